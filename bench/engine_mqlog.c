/*
 * engine_mqlog.c - mqlog behind the bench's engine interface.
 *
 * One topic "bench" of o->partitions partitions in the data directory.
 * Appends are mqlog_append() with the topic's sync policy; reads are
 * mqlog_reader_read() in chunks of READ_CHUNK records, which validates the
 * checksums of every batch before handing out its records.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>

struct mq_ctx {
	mqlog *db;	/* the data directory */
	mqlog_topic *t; /* topic "bench" */
	uint32_t partitions;
};

/* Per thread: the array mqlog_reader_read() fills. */
struct mq_thread {
	mqlog_record recs[READ_CHUNK];
};

static int fail(const char *what, int rc)
{
	bench_error("mqlog: %s: %s (%s)", what, mqlog_errmsg(NULL),
		    mqlog_strerror(rc));
	return rc ? rc : -1;
}

static int mq_open(const struct bench_opts *o, const char *dir, bool create,
		   void **out)
{
	struct mq_ctx *c = xcalloc(1, sizeof *c);
	mqlog_options opts;
	mqlog_topic_config cfg;
	int rc;

	mqlog_options_init(&opts);
	opts.flags |= MQLOG_OPEN_CREATE;
	if (o->wait_spin_us >= 0)
		opts.wait_spin_us = (uint32_t)o->wait_spin_us;
	rc = mqlog_open(dir, &opts, &c->db);
	if (rc) {
		fail(dir, rc);
		goto fail;
	}
	if (create) {
		rc = mqlog_topic_delete(c->db, BENCH_TOPIC);
		if (rc && rc != MQLOG_ENOENT) {
			fail("delete the previous topic " BENCH_TOPIC, rc);
			goto fail;
		}
		mqlog_topic_config_init(&cfg);
		cfg.partitions = o->partitions;
		cfg.sync = o->sync;
		if (o->segment_bytes)
			cfg.segment_bytes = o->segment_bytes;
		if (o->max_messages)
			cfg.max_messages = o->max_messages;
		/* Leave room for the record's own encoding. */
		if (o->size + 1024 > cfg.max_record_bytes)
			cfg.max_record_bytes = (uint32_t)(o->size + 1024);
		rc = mqlog_topic_create(c->db, BENCH_TOPIC, &cfg);
		if (rc) {
			fail("create topic " BENCH_TOPIC, rc);
			goto fail;
		}
	}
	rc = mqlog_topic_open(c->db, BENCH_TOPIC, &c->t);
	if (rc) {
		fail("open topic " BENCH_TOPIC, rc);
		goto fail;
	}
	c->partitions = mqlog_topic_partitions(c->t);
	if (create) {
		/* Partitions open lazily (files, state, recovery): do it now,
		 * untimed, so the run measures appends, not setup. */
		for (uint32_t p = 0; p < c->partitions; p++) {
			mqlog_partition_info info;

			rc = mqlog_partition_stat(c->t, p, &info);
			if (rc) {
				fail("open partition", rc);
				goto fail;
			}
		}
	}
	*out = c;
	return 0;
fail:
	mqlog_topic_close(c->t);
	mqlog_close(c->db);
	free(c);
	return -1;
}

static int mq_thread_init(void *ctx, void **tctx)
{
	(void)ctx;
	*tctx = malloc(sizeof(struct mq_thread));
	if (!*tctx) {
		bench_error("out of memory");
		return -1;
	}
	return 0;
}

static void mq_thread_fini(void *ctx, void *tctx)
{
	(void)ctx;
	free(tctx);
}

static int mq_append(void *ctx, void *tctx, uint32_t part,
		     const mqlog_msg *msgs, size_t n)
{
	struct mq_ctx *c = ctx;
	int rc;

	(void)tctx;
	rc = mqlog_append(c->t, part, msgs, n, MQLOG_SYNC_DEFAULT, NULL);
	if (rc) {
		char what[64];

		snprintf(what, sizeof what, "append to partition %u",
			 (unsigned)part);
		return fail(what, rc);
	}
	return 0;
}

static int mq_sync(void *ctx)
{
	struct mq_ctx *c = ctx;
	int rc = mqlog_topic_sync(c->t);

	return rc ? fail("sync", rc) : 0;
}

static int mq_read_part(void *ctx, void *tctx, uint32_t part,
			struct read_tally *tally)
{
	struct mq_ctx *c = ctx;
	struct mq_thread *th = tctx;
	mqlog_partition_info info;
	mqlog_reader *r = NULL;
	uint64_t records = 0, bytes = 0, sum = 0;
	int rc;

	rc = mqlog_partition_stat(c->t, part, &info);
	if (rc)
		return fail("stat partition", rc);
	rc = mqlog_reader_open(c->t, part, &r);
	if (rc)
		return fail("open reader", rc);
	while (mqlog_reader_position(r) < info.end_offset) {
		size_t n = 0;

		rc = mqlog_reader_read(r, th->recs, READ_CHUNK, &n);
		if (rc) {
			fail("read", rc);
			break;
		}
		if (!n) {
			bench_error(
				"mqlog: partition %u ends at %llu, "
				"expected %llu",
				(unsigned)part,
				(unsigned long long)mqlog_reader_position(r),
				(unsigned long long)info.end_offset);
			rc = -1;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			const mqlog_bytes *v = &th->recs[i].value;

			if (v->len)
				sum += *(const unsigned char *)v->data;
			bytes += v->len;
		}
		records += n;
	}
	mqlog_reader_close(r);
	tally->records += records;
	tally->bytes += bytes;
	tally->sum += sum;
	return rc;
}

static void mq_close(void *ctx)
{
	struct mq_ctx *c = ctx;

	if (!c)
		return;
	mqlog_topic_close(c->t);
	mqlog_close(c->db);
	free(c);
}

mqlog_topic *engine_mqlog_topic(void *ctx)
{
	return ((struct mq_ctx *)ctx)->t;
}

const struct engine_ops engine_mqlog = {
	.name = "mqlog",
	.open = mq_open,
	.thread_init = mq_thread_init,
	.thread_fini = mq_thread_fini,
	.append = mq_append,
	.sync = mq_sync,
	.read_part = mq_read_part,
	.close = mq_close,
};
