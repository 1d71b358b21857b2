/*
 * baseline_file.c - the plain append-only file: the physical limit of a
 * log on this machine.
 *
 * One file per partition, DIR/pN.log, holding length-prefixed records:
 *
 *     +----------+-----------+----------+-----------+---
 *     | u32 len  | len bytes | u32 len  | len bytes | ...   (little-endian)
 *     +----------+-----------+----------+-----------+---
 *
 * No checksum, no offsets, no index, no preallocation: what a careful
 * programmer writes in an afternoon.  The same batching as mqlog: a batch
 * is encoded into a per-thread buffer outside the lock and written with one
 * write() under the partition's mutex.  The same sync policy: `always`
 * calls fdatasync() after every batch (each caller its own, no group
 * commit), `interval` every SYNC_INTERVAL_MS, `none` never.
 *
 * Reading maps the file and walks the length prefixes, touching the first
 * byte of every value.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct file_part {
	pthread_mutex_t mu;    /* serialises writes to fd */
	int fd;		       /* the partition's file, or -1 */
	uint64_t last_sync_ns; /* interval policy: last fdatasync (under mu) */
};

struct file_ctx {
	char dir[PATH_MAX];	 /* the store's directory */
	int sync;		 /* enum mqlog_sync_policy */
	uint64_t batch;		 /* records per batch, for buffer sizes */
	uint64_t size;		 /* value bytes per record */
	uint32_t partitions;	 /* files */
	struct file_part *parts; /* one per partition */
};

/* Per thread: the encode buffer of one batch. */
struct file_thread {
	unsigned char *buf; /* batch * (4 + size) bytes */
	size_t cap;
};

static void file_path(const struct file_ctx *c, uint32_t part,
		      char out[PATH_MAX])
{
	snprintf(out, PATH_MAX, "%s/p%u.log", c->dir, (unsigned)part);
}

static void file_close(void *ctx)
{
	struct file_ctx *c = ctx;

	if (!c)
		return;
	for (uint32_t p = 0; p < c->partitions; p++) {
		if (c->parts[p].fd >= 0)
			close(c->parts[p].fd);
		pthread_mutex_destroy(&c->parts[p].mu);
	}
	free(c->parts);
	free(c);
}

static int file_open(const struct bench_opts *o, const char *dir, bool create,
		     void **out)
{
	struct file_ctx *c = xcalloc(1, sizeof *c);
	char path[PATH_MAX];

	snprintf(c->dir, sizeof c->dir, "%s", dir);
	c->sync = o->sync;
	c->batch = o->batch;
	c->size = o->size;
	c->partitions = o->partitions;
	c->parts = xcalloc(o->partitions, sizeof *c->parts);
	for (uint32_t p = 0; p < c->partitions; p++) {
		c->parts[p].fd = -1;
		pthread_mutex_init(&c->parts[p].mu, NULL);
	}
	mkdirs(dir);
	for (uint32_t p = 0; p < c->partitions; p++) {
		file_path(c, p, path);
		c->parts[p].fd = open(path,
				      O_RDWR | O_CREAT | O_CLOEXEC |
					      (create ? O_TRUNC : O_APPEND),
				      0644);
		if (c->parts[p].fd < 0) {
			bench_error("file: %s: %s", path, strerror(errno));
			file_close(c);
			return -1;
		}
		c->parts[p].last_sync_ns = now_ns();
	}
	*out = c;
	return 0;
}

static int file_thread_init(void *ctx, void **tctx)
{
	struct file_ctx *c = ctx;
	struct file_thread *t = calloc(1, sizeof *t);

	if (t) {
		t->cap = (size_t)(c->batch * (4 + c->size));
		t->buf = malloc(t->cap ? t->cap : 1);
	}
	if (!t || !t->buf) {
		free(t);
		bench_error("file: out of memory for a batch buffer");
		return -1;
	}
	*tctx = t;
	return 0;
}

static void file_thread_fini(void *ctx, void *tctx)
{
	struct file_thread *t = tctx;

	(void)ctx;
	if (t)
		free(t->buf);
	free(t);
}

static int file_append(void *ctx, void *tctx, uint32_t part,
		       const mqlog_msg *msgs, size_t n)
{
	struct file_ctx *c = ctx;
	struct file_thread *t = tctx;
	struct file_part *fp = &c->parts[part];
	unsigned char *w = t->buf;
	bool do_sync = false;
	size_t len;

	for (size_t i = 0; i < n; i++) {
		uint32_t l = (uint32_t)msgs[i].value.len;

		w[0] = (unsigned char)l;
		w[1] = (unsigned char)(l >> 8);
		w[2] = (unsigned char)(l >> 16);
		w[3] = (unsigned char)(l >> 24);
		memcpy(w + 4, msgs[i].value.data, l);
		w += 4 + l;
	}
	len = (size_t)(w - t->buf);

	pthread_mutex_lock(&fp->mu);
	if (write_full(fp->fd, t->buf, len) != 0) {
		int e = errno;

		pthread_mutex_unlock(&fp->mu);
		bench_error("file: write p%u: %s", (unsigned)part, strerror(e));
		return -1;
	}
	if (c->sync == MQLOG_SYNC_ALWAYS) {
		do_sync = true;
	} else if (c->sync == MQLOG_SYNC_INTERVAL) {
		uint64_t now = now_ns();

		if (now - fp->last_sync_ns >=
		    (uint64_t)SYNC_INTERVAL_MS * 1000000u) {
			fp->last_sync_ns = now;
			do_sync = true;
		}
	}
	pthread_mutex_unlock(&fp->mu);
	if (do_sync && fdatasync(fp->fd) != 0) {
		bench_error("file: fdatasync p%u: %s", (unsigned)part,
			    strerror(errno));
		return -1;
	}
	return 0;
}

static int file_sync(void *ctx)
{
	struct file_ctx *c = ctx;

	for (uint32_t p = 0; p < c->partitions; p++) {
		if (fdatasync(c->parts[p].fd) != 0) {
			bench_error("file: fdatasync p%u: %s", (unsigned)p,
				    strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int file_read_part(void *ctx, void *tctx, uint32_t part,
			  struct read_tally *tally)
{
	struct file_ctx *c = ctx;
	char path[PATH_MAX];
	struct stat st;
	const unsigned char *m;
	void *map;
	uint64_t pos = 0, records = 0, bytes = 0, sum = 0;
	int fd, rc = 0;

	(void)tctx;
	file_path(c, part, path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		bench_error("file: %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_size == 0) {
		close(fd);
		return 0;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		bench_error("file: mmap %s: %s", path, strerror(errno));
		return -1;
	}
	(void)madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
	m = map;
	while (pos + 4 <= (uint64_t)st.st_size) {
		uint32_t l = (uint32_t)m[pos] | (uint32_t)m[pos + 1] << 8 |
			     (uint32_t)m[pos + 2] << 16 |
			     (uint32_t)m[pos + 3] << 24;

		if (pos + 4 + l > (uint64_t)st.st_size) {
			bench_error("file: %s: record at byte %llu runs past "
				    "the end",
				    path, (unsigned long long)pos);
			rc = -1;
			break;
		}
		if (l)
			sum += m[pos + 4];
		bytes += l;
		records++;
		pos += 4 + (uint64_t)l;
	}
	munmap(map, (size_t)st.st_size);
	tally->records += records;
	tally->bytes += bytes;
	tally->sum += sum;
	return rc;
}

const struct engine_ops baseline_file = {
	.name = "file",
	.open = file_open,
	.thread_init = file_thread_init,
	.thread_fini = file_thread_fini,
	.append = file_append,
	.sync = file_sync,
	.read_part = file_read_part,
	.close = file_close,
};
