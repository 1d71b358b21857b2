/*
 * baseline_lmdb.c - an LMDB-only queue: what a user who already links LMDB
 * would build instead of mqlog.
 *
 * One environment in DIR, one named database per partition ("p0", "p1",
 * ...), records keyed by a big-endian 64-bit sequence number so that keys
 * sort in append order and every put is MDB_APPEND (no search, the page is
 * filled before it splits).  One write transaction per batch.  Sync policy:
 * `always` is LMDB's default (data and meta page synced at every commit),
 * `none` is MDB_NOSYNC, `interval` is MDB_NOSYNC plus mdb_env_sync() every
 * SYNC_INTERVAL_MS.  Default LMDB otherwise (no MDB_WRITEMAP).  LMDB has no
 * checksums, so its reads check nothing.
 *
 * Concurrent producers queue on LMDB's single writer lock.  Readers walk a
 * cursor in a read-only transaction, touching the first byte of each value.
 */
#include "bench.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lmdb_ctx {
	MDB_env *env;	       /* the environment */
	MDB_dbi *dbi;	       /* database of each partition */
	uint64_t *seq;	       /* next key of each partition (writer lock) */
	uint32_t partitions;   /* databases */
	int sync;	       /* enum mqlog_sync_policy */
	uint64_t last_sync_ns; /* interval policy (writer lock) */
};

static int lfail(const char *what, int rc)
{
	bench_error("lmdb: %s: %s", what, mdb_strerror(rc));
	return -1;
}

static void lmdb_close(void *ctx)
{
	struct lmdb_ctx *c = ctx;

	if (!c)
		return;
	if (c->env)
		mdb_env_close(c->env);
	free(c->dbi);
	free(c->seq);
	free(c);
}

/* Bytes a record takes in the tree, generously, for the map size. */
static uint64_t lmdb_record_bytes(uint64_t size)
{
	if (size + 16 <= 2000)
		return size + 32;
	return (size + 16 + 4095) / 4096 * 4096 + 32; /* overflow pages */
}

static int lmdb_open(const struct bench_opts *o, const char *dir, bool create,
		     void **out)
{
	struct lmdb_ctx *c = xcalloc(1, sizeof *c);
	MDB_txn *txn = NULL;
	unsigned flags = o->sync == MQLOG_SYNC_ALWAYS ? 0u : MDB_NOSYNC;
	uint64_t map;
	int rc;

	c->partitions = o->partitions;
	c->sync = o->sync;
	c->dbi = xcalloc(o->partitions, sizeof *c->dbi);
	c->seq = xcalloc(o->partitions, sizeof *c->seq);
	c->last_sync_ns = now_ns();
	if (create)
		rmtree(dir);
	mkdirs(dir);

	/* Room for the records twice over (copy-on-write garbage, branch
	 * pages), plus slack; the file grows only as it is written. */
	map = 2 * o->count * lmdb_record_bytes(o->size) + (64u << 20);
	rc = mdb_env_create(&c->env);
	if (rc) {
		c->env = NULL;
		lfail("env create", rc);
		goto fail;
	}
	if ((rc = mdb_env_set_mapsize(c->env, (size_t)map)) ||
	    (rc = mdb_env_set_maxdbs(c->env, o->partitions + 1)) ||
	    (rc = mdb_env_set_maxreaders(c->env, MAX_THREADS + 16))) {
		lfail("env setup", rc);
		goto fail;
	}
	rc = mdb_env_open(c->env, dir, flags, 0644);
	if (rc) {
		lfail(dir, rc);
		goto fail;
	}
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc) {
		lfail("txn begin", rc);
		goto fail;
	}
	for (uint32_t p = 0; p < c->partitions; p++) {
		char name[16];
		MDB_cursor *cur;
		MDB_val k, v;

		snprintf(name, sizeof name, "p%u", (unsigned)p);
		rc = mdb_dbi_open(txn, name, MDB_CREATE, &c->dbi[p]);
		if (rc) {
			mdb_txn_abort(txn);
			lfail("open database", rc);
			goto fail;
		}
		/* Continue after the last key when attaching. */
		if (mdb_cursor_open(txn, c->dbi[p], &cur) == 0) {
			if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 &&
			    k.mv_size == 8) {
				const unsigned char *b = k.mv_data;
				uint64_t s = 0;

				for (int i = 0; i < 8; i++)
					s = s << 8 | b[i];
				c->seq[p] = s + 1;
			}
			mdb_cursor_close(cur);
		}
	}
	rc = mdb_txn_commit(txn);
	if (rc) {
		lfail("txn commit", rc);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	lmdb_close(c);
	return -1;
}

static int lmdb_append(void *ctx, void *tctx, uint32_t part,
		       const mqlog_msg *msgs, size_t n)
{
	struct lmdb_ctx *c = ctx;
	MDB_txn *txn;
	bool do_sync = false;
	int rc;

	(void)tctx;
	rc = mdb_txn_begin(c->env, NULL, 0, &txn);
	if (rc)
		return lfail("txn begin", rc);
	for (size_t i = 0; i < n; i++) {
		uint64_t s = c->seq[part] + i;
		unsigned char key[8];
		MDB_val k = { sizeof key, key };
		/* LMDB takes a non-const pointer but only reads it. */
		MDB_val v = { msgs[i].value.len,
			      (void *)(uintptr_t)msgs[i].value.data };

		for (int b = 7; b >= 0; b--, s >>= 8)
			key[b] = (unsigned char)s;
		rc = mdb_put(txn, c->dbi[part], &k, &v, MDB_APPEND);
		if (rc) {
			mdb_txn_abort(txn);
			return lfail("put", rc);
		}
	}
	c->seq[part] += n;
	if (c->sync == MQLOG_SYNC_INTERVAL) {
		uint64_t now = now_ns();

		if (now - c->last_sync_ns >=
		    (uint64_t)SYNC_INTERVAL_MS * 1000000u) {
			c->last_sync_ns = now;
			do_sync = true;
		}
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		return lfail("commit", rc);
	if (do_sync && (rc = mdb_env_sync(c->env, 1)) != 0)
		return lfail("sync", rc);
	return 0;
}

static int lmdb_sync(void *ctx)
{
	struct lmdb_ctx *c = ctx;
	int rc = mdb_env_sync(c->env, 1);

	return rc ? lfail("sync", rc) : 0;
}

static int lmdb_read_part(void *ctx, void *tctx, uint32_t part,
			  struct read_tally *tally)
{
	struct lmdb_ctx *c = ctx;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t records = 0, bytes = 0, sum = 0;
	int rc;

	(void)tctx;
	rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lfail("read txn", rc);
	rc = mdb_cursor_open(txn, c->dbi[part], &cur);
	if (rc) {
		mdb_txn_abort(txn);
		return lfail("cursor", rc);
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (v.mv_size)
			sum += *(const unsigned char *)v.mv_data;
		bytes += v.mv_size;
		records++;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND)
		return lfail("cursor get", rc);
	tally->records += records;
	tally->bytes += bytes;
	tally->sum += sum;
	return 0;
}

const struct engine_ops baseline_lmdb = {
	.name = "lmdb",
	.open = lmdb_open,
	.append = lmdb_append,
	.sync = lmdb_sync,
	.read_part = lmdb_read_part,
	.close = lmdb_close,
};
