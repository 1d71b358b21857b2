/*
 * fuzz_scan.c - libFuzzer target for the segment recovery scan
 * (segment_scan, as recovery runs it) and mqlog_scan_file() on an
 * arbitrary file.
 *
 * Input: one mode byte, then a segment file.  Mode bit 0 walks the input
 * as a chain of batches and fixes each one's base offset and checksums (so
 * that the scan gets past the first batch); bit 1 scans with body checks.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_batch(void *arg, const mqlog_batch_info *b)
{
	(void)arg;
	return b->record_count == 0; /* never: valid batches have records */
}

static int on_record(void *arg, const mqlog_batch_info *b,
		     const mqlog_record *rec)
{
	mqlog_header hd[4];
	(void)arg;
	(void)b;
	(void)mqlog_record_headers(rec, hd, 4);
	return 0;
}

static int scan_cb(void *arg, uint64_t pos, const uint8_t *batch,
		   const struct batch_hdr *h)
{
	(void)arg;
	(void)pos;
	(void)batch;
	(void)h;
	return 0;
}

static void fix_chain(uint8_t *buf, size_t size)
{
	uint64_t pos = 0, expect = 0;
	while (pos + BATCH_HEADER_SIZE <= size) {
		uint32_t len = mq_ld32(buf + pos + 4);
		uint32_t count = mq_ld32(buf + pos + 36);
		if (len < BATCH_HEADER_SIZE || len > size - pos)
			break;
		mq_st32(buf + pos, BATCH_MAGIC);
		mq_st64(buf + pos + 24,
			XXH3_64bits(buf + pos + BATCH_BODY_CSUM_START,
				    len - BATCH_BODY_CSUM_START));
		batch_seal(buf + pos, expect);
		expect += count;
		pos += len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[128];
	static const mqlog_scan_ops ops = { on_batch, on_record };
	struct scan_result res;
	uint8_t mode, *buf;
	int fd;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (mode & 1)
		fix_chain(buf, size);
	segment_scan(buf, 0, size, 0, (mode & 2) != 0, INT64_MIN, scan_cb, NULL,
		     &res);
	if (res.valid_end > size || res.stop_rc > 0)
		abort();

	if (!path[0]) {
		const char *tmp = getenv("TMPDIR");
		snprintf(path, sizeof path, "%s/mqlog-fuzz-scan-%d",
			 tmp && *tmp ? tmp : "/tmp", (int)getpid());
		mkdir(path, 0700);
		snprintf(path + strlen(path), sizeof path - strlen(path),
			 "/00000000000000000000.seg");
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		if (write(fd, buf, size) == (ssize_t)size)
			(void)mqlog_scan_file(path, &ops, NULL);
		close(fd);
	}
	free(buf);
	return 0;
}
