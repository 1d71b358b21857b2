/*
 * segment.c - one segment file: naming, listing, read-only mappings, and the
 * validating scan used by recovery, readers and verify.
 *
 * FORMAT
 *
 * A partition is a directory of segment files named by the offset of their
 * first record, as 20 decimal digits and ".seg":
 *
 *     00000000000000000000.seg   offsets 0 .. 1048575
 *     00000000000001048576.seg   offsets 1048576 ..
 *
 * A segment is a plain concatenation of record batches (record.c gives the
 * batch layout), with no file header and no padding:
 *
 *     +---------+---------+-----+---------+
 *     | batch 0 | batch 1 | ... | batch n |   (each: 68-byte header + records)
 *     +---------+---------+-----+---------+
 *
 * VALIDITY
 *
 * Batch i+1 starts at the byte after batch i, and its base offset is batch
 * i's base offset plus its record count; the first batch's base offset is
 * the file's name.  A batch is valid when its magic, length (not past the
 * end of the file), header checksum and body checksum hold.  The valid
 * prefix of a segment ends at the first batch that is not valid or does not
 * continue the offsets.
 *
 * Only the last (active) segment of a partition is appended to.  After a
 * crash its tail may be torn: recovery truncates it to its valid prefix.
 * Every earlier (sealed) segment was fdatasync'ed before its successor was
 * created, so damage inside one is corruption: it is reported with the file
 * and byte position and never truncated away.
 */
#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

void segment_name(char out[SEG_NAME_LEN + 1], uint64_t base)
{
	snprintf(out, SEG_NAME_LEN + 1, "%020llu.seg",
		 (unsigned long long)base);
}

bool segment_parse_name(const char *name, uint64_t *base)
{
	uint64_t v = 0;

	for (int i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		uint64_t d = (uint64_t)(name[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (strcmp(name + 20, ".seg") != 0)
		return false;
	*base = v;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int segment_list(const char *dir, uint64_t **bases, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t *v = NULL, base;
	size_t cnt = 0, cap = 0;

	if (!d)
		return mq_err(-errno, "%s", dir);
	while ((de = readdir(d)) != NULL) {
		if (!segment_parse_name(de->d_name, &base))
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			uint64_t *nv = realloc(v, ncap * sizeof *nv);
			if (!nv) {
				free(v);
				closedir(d);
				return mq_err(MQLOG_ENOMEM, "%s", dir);
			}
			v = nv;
			cap = ncap;
		}
		v[cnt++] = base;
	}
	closedir(d);
	if (cnt > 1)
		qsort(v, cnt, sizeof *v, cmp_u64);
	*bases = v;
	*n = cnt;
	return 0;
}

/* ======================================================================== */
/* Mappings                                                                 */
/* ======================================================================== */

static size_t round_page(uint64_t n)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	return (size_t)((n + pg - 1) / pg * pg);
}

/*
 * The mapping may be longer than the file: readers only touch bytes below
 * the published end, which is never past the file's end, so mapping the
 * segment's full roll size once avoids a remap per append.
 */
static int map_fd(struct segmap *m, const char *path, uint64_t len)
{
	size_t want = round_page(len ? len : 1);
	void *p = mmap(NULL, want, PROT_READ, MAP_SHARED, m->fd, 0);

	if (p == MAP_FAILED)
		return mq_err(-errno, "%s: mmap %zu bytes", path, want);
	m->base = p;
	m->len = want;
	return 0;
}

int segmap_open(struct segmap *m, const char *path, uint64_t min_len)
{
	int rc;

	m->fd = -1;
	m->base = NULL;
	m->len = 0;
	m->file_size = 0;
	m->fd = io_open(path, O_RDONLY, 0);
	if (m->fd < 0) {
		rc = m->fd;
		m->fd = -1;
		return mq_err(rc, "%s", path);
	}
	rc = io_file_size(m->fd, &m->file_size);
	if (rc) {
		segmap_close(m);
		return mq_err(rc, "%s: stat", path);
	}
	rc = map_fd(m, path, m->file_size > min_len ? m->file_size : min_len);
	if (rc) {
		close(m->fd);
		m->fd = -1;
	}
	return rc;
}

int segmap_ensure(struct segmap *m, const char *path, uint64_t need)
{
	if (need <= m->len)
		return 0;
	munmap((void *)(uintptr_t)m->base, m->len);
	m->base = NULL;
	m->len = 0;
	/* Grow geometrically so a growing active segment remaps rarely. */
	return map_fd(m, path, need * 2);
}

void segmap_close(struct segmap *m)
{
	if (m->base)
		munmap((void *)(uintptr_t)m->base, m->len);
	if (m->fd >= 0)
		close(m->fd);
	m->base = NULL;
	m->len = 0;
	m->fd = -1;
}

/* ======================================================================== */
/* Validating scan                                                          */
/* ======================================================================== */

void segment_scan(const uint8_t *map, uint64_t start, uint64_t limit,
		  uint64_t expect_offset, bool check_body, int64_t max_ts,
		  scan_batch_fn fn, void *arg, struct scan_result *res)
{
	segment_scan_from(map, start, limit, expect_offset,
			  check_body ? 0 : UINT64_MAX, max_ts, fn, arg, res);
}

void segment_scan_from(const uint8_t *map, uint64_t start, uint64_t limit,
		       uint64_t expect_offset, uint64_t check_from,
		       int64_t max_ts, scan_batch_fn fn, void *arg,
		       struct scan_result *res)
{
	uint64_t pos = start;
	struct batch_hdr h;
	const char *why = NULL;

	memset(res, 0, sizeof *res);
	res->max_ts = max_ts;
	res->seg_max_ts = INT64_MIN;
	while (pos < limit) {
		int rc = batch_check_header(map + pos, (size_t)(limit - pos),
					    &h, &why);
		if (!rc && h.base_offset != expect_offset) {
			rc = MQLOG_ECORRUPT;
			why = "base offset does not continue the log";
		}
		if (!rc && pos >= check_from)
			rc = batch_check_body(map + pos, &h, &why);
		if (rc) {
			res->stop_rc = MQLOG_ECORRUPT;
			res->why = why;
			res->bad_pos = pos;
			break;
		}
		if (fn) {
			rc = fn(arg, pos, map + pos, &h);
			if (rc) {
				res->stop_rc = rc;
				res->why = "stopped by callback";
				res->bad_pos = pos;
				break;
			}
		}
		if (h.max_timestamp > res->max_ts)
			res->max_ts = h.max_timestamp;
		if (h.max_timestamp > res->seg_max_ts)
			res->seg_max_ts = h.max_timestamp;
		expect_offset += h.record_count;
		pos += h.length;
		res->batches++;
	}
	res->valid_end = pos;
	res->next_offset = expect_offset;
}
