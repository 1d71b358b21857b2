/*
 * baseline_sqlite.c - a SQLite table used as a queue, in WAL mode: what a
 * user who reaches for SQLite would build instead of mqlog.  Built only
 * when meson finds sqlite3 (MQLOG_BENCH_SQLITE).
 *
 * One database file DIR/queue.db, one table per partition:
 *
 *     CREATE TABLE qN (seq INTEGER PRIMARY KEY, v BLOB NOT NULL)
 *
 * so that a record's rowid is its sequence number and inserts go to the
 * right edge of the b-tree.  One transaction per batch, statements
 * prepared once, values bound without a copy (SQLITE_STATIC).  Sync
 * policy: `none` is synchronous=OFF, `interval` synchronous=NORMAL (in WAL
 * mode: synced at checkpoints, a process crash loses nothing), `always`
 * synchronous=FULL (the WAL is synced at every commit).  SQLite allows one
 * writer at a time, so producer threads share one connection under a
 * mutex, as an application would (separate connections would spin in the
 * busy handler).  Readers have a connection each and step through
 * "SELECT v FROM qN ORDER BY seq".
 */
#ifdef MQLOG_BENCH_SQLITE

#include "bench.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sq_ctx {
	char path[PATH_MAX];  /* DIR/queue.db */
	sqlite3 *db;	      /* the writers' connection */
	pthread_mutex_t mu;   /* serialises the writers on it */
	sqlite3_stmt *begin;  /* BEGIN */
	sqlite3_stmt *commit; /* COMMIT */
	sqlite3_stmt **ins;   /* INSERT INTO qN(v) VALUES(?1), per partition */
	uint32_t partitions;  /* tables */
};

/* Per thread: a read connection, opened on first read. */
struct sq_thread {
	sqlite3 *rdb;
};

static int sfail(sqlite3 *db, const char *what)
{
	bench_error("sqlite: %s: %s", what,
		    db ? sqlite3_errmsg(db) : "out of memory");
	return -1;
}

static void sq_close(void *ctx)
{
	struct sq_ctx *c = ctx;

	if (!c)
		return;
	if (c->ins)
		for (uint32_t p = 0; p < c->partitions; p++)
			sqlite3_finalize(c->ins[p]);
	sqlite3_finalize(c->begin);
	sqlite3_finalize(c->commit);
	sqlite3_close(c->db);
	pthread_mutex_destroy(&c->mu);
	free(c->ins);
	free(c);
}

static int sq_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		bench_error("sqlite: %s: %s", sql, err ? err : "error");
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

static int sq_open(const struct bench_opts *o, const char *dir, bool create,
		   void **out)
{
	struct sq_ctx *c = xcalloc(1, sizeof *c);
	const char *sync = o->sync == MQLOG_SYNC_ALWAYS	  ? "FULL" :
			   o->sync == MQLOG_SYNC_INTERVAL ? "NORMAL" :
							    "OFF";
	char sql[160];

	pthread_mutex_init(&c->mu, NULL);
	c->partitions = o->partitions;
	if (create)
		rmtree(dir);
	mkdirs(dir);
	snprintf(c->path, sizeof c->path, "%s/queue.db", dir);
	if (sqlite3_open_v2(c->path, &c->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				    SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		sfail(c->db, c->path);
		goto fail;
	}
	snprintf(sql, sizeof sql,
		 "PRAGMA journal_mode=WAL; "
		 "PRAGMA synchronous=%s; BEGIN",
		 sync);
	if (sq_exec(c->db, sql))
		goto fail;
	c->ins = xcalloc(o->partitions, sizeof *c->ins);
	for (uint32_t p = 0; p < c->partitions; p++) {
		snprintf(sql, sizeof sql,
			 "CREATE TABLE IF NOT EXISTS q%u "
			 "(seq INTEGER PRIMARY KEY, v BLOB NOT NULL)",
			 (unsigned)p);
		if (sq_exec(c->db, sql))
			goto fail;
	}
	if (sq_exec(c->db, "COMMIT"))
		goto fail;
	for (uint32_t p = 0; p < c->partitions; p++) {
		snprintf(sql, sizeof sql, "INSERT INTO q%u(v) VALUES(?1)",
			 (unsigned)p);
		if (sqlite3_prepare_v2(c->db, sql, -1, &c->ins[p], NULL) !=
		    SQLITE_OK) {
			sfail(c->db, sql);
			goto fail;
		}
	}
	if (sqlite3_prepare_v2(c->db, "BEGIN", -1, &c->begin, NULL) !=
		    SQLITE_OK ||
	    sqlite3_prepare_v2(c->db, "COMMIT", -1, &c->commit, NULL) !=
		    SQLITE_OK) {
		sfail(c->db, "prepare");
		goto fail;
	}
	*out = c;
	return 0;
fail:
	sq_close(c);
	return -1;
}

static int sq_thread_init(void *ctx, void **tctx)
{
	(void)ctx;
	*tctx = calloc(1, sizeof(struct sq_thread));
	if (!*tctx) {
		bench_error("sqlite: out of memory");
		return -1;
	}
	return 0;
}

static void sq_thread_fini(void *ctx, void *tctx)
{
	struct sq_thread *t = tctx;

	(void)ctx;
	if (t)
		sqlite3_close(t->rdb);
	free(t);
}

static int step_done(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : rc;
}

static int sq_append(void *ctx, void *tctx, uint32_t part,
		     const mqlog_msg *msgs, size_t n)
{
	struct sq_ctx *c = ctx;
	sqlite3_stmt *ins = c->ins[part];
	int rc = 0;

	(void)tctx;
	pthread_mutex_lock(&c->mu);
	if (step_done(c->begin)) {
		rc = sfail(c->db, "BEGIN");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_blob(ins, 1, msgs[i].value.data,
				  (int)msgs[i].value.len, SQLITE_STATIC);
		if (step_done(ins)) {
			rc = sfail(c->db, "INSERT");
			sqlite3_clear_bindings(ins);
			(void)sq_exec(c->db, "ROLLBACK");
			goto out;
		}
	}
	sqlite3_clear_bindings(ins);
	if (step_done(c->commit))
		rc = sfail(c->db, "COMMIT");
out:
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* Move the WAL into the database (untimed, before reading). */
static int sq_sync(void *ctx)
{
	struct sq_ctx *c = ctx;

	return sq_exec(c->db, "PRAGMA wal_checkpoint(PASSIVE)");
}

static int sq_read_part(void *ctx, void *tctx, uint32_t part,
			struct read_tally *tally)
{
	struct sq_ctx *c = ctx;
	struct sq_thread *t = tctx;
	sqlite3_stmt *s = NULL;
	uint64_t records = 0, bytes = 0, sum = 0;
	char sql[64];
	int rc;

	if (!t->rdb &&
	    sqlite3_open_v2(c->path, &t->rdb,
			    SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK)
		return sfail(t->rdb, c->path);
	snprintf(sql, sizeof sql, "SELECT v FROM q%u ORDER BY seq",
		 (unsigned)part);
	if (sqlite3_prepare_v2(t->rdb, sql, -1, &s, NULL) != SQLITE_OK)
		return sfail(t->rdb, sql);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_blob(s, 0);
		int len = sqlite3_column_bytes(s, 0);

		if (len > 0)
			sum += v[0];
		bytes += (uint64_t)len;
		records++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return sfail(t->rdb, sql);
	tally->records += records;
	tally->bytes += bytes;
	tally->sum += sum;
	return 0;
}

const struct engine_ops baseline_sqlite = {
	.name = "sqlite",
	.open = sq_open,
	.thread_init = sq_thread_init,
	.thread_fini = sq_thread_fini,
	.append = sq_append,
	.sync = sq_sync,
	.read_part = sq_read_part,
	.close = sq_close,
};

#else

/* Without sqlite3 this file is empty; ISO C wants a declaration. */
typedef int baseline_sqlite_unused;

#endif /* MQLOG_BENCH_SQLITE */
