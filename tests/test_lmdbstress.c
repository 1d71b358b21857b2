/*
 * test_lmdbstress.c - the structural check of data.mdb (lmdbcheck.c)
 * accepts every state LMDB itself commits.  A rule of the check that LMDB
 * does not keep would make a valid index refuse to open, so a seeded random
 * workload drives LMDB directly and every commit is checked: keys of 0 to
 * 512 bytes, values of 0 to 20000 bytes (overflow runs), overwrites that
 * grow and shrink values in place, deletes of ranges, mdb_drop (emptied
 * and deleted), MDB_APPEND runs, transactions that free thousands of pages
 * (free lists whose records spill onto overflow pages) and many small
 * ones, nested transactions committed or aborted, trees four and more
 * levels deep.  Then the states that come from
 * outside the workload: a compacting and a plain copy, a map grown while
 * closed and while open, environments created with the flags LMDB
 * writes into the meta page (MDB_NOSUBDIR, MDB_FIXEDMAP), and one that
 * writes through its map (MDB_WRITEMAP).
 *
 * MQLOG_LMDBSTRESS_ROUNDS sets the number of commits of the workload
 * (default 3000), MQLOG_LMDBSTRESS_SEED its seed (default fixed).  A state
 * the check refuses is kept as $TMPDIR/lmdbstress-<seed>-<commit>.mdb.
 */
#include "internal.h"
#include "fixture.h"

#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_ROUNDS 3000u
#define DEFAULT_SEED   0x6c6d64627374ull
#define MAX_KEY	       511u
#define MAX_VALUE      20000u
#define MAP_SIZE       (1ull << 30)
#define MAX_ENTRIES    3000u /* above this the workload leans to deletes */
#define NDBS	       12u

/* mqlog's named databases (index.c), one with a name of the largest key
 * size and one with a name of one byte. */
static const char *const db_names[NDBS - 2] = {
	"meta",	      "topics",	    "segments",	     "offset_index",
	"time_index", "partitions", "group_offsets", "group_members",
	"producers",  "intents",
};

static char long_name[MAX_KEY + 1];

static const char *db_name(unsigned i)
{
	if (i < NDBS - 2)
		return db_names[i];
	if (i == NDBS - 2)
		return "x";
	memset(long_name, 'n', MAX_KEY);
	long_name[MAX_KEY] = '\0';
	return long_name;
}

/* ------------------------------------------------------------------------ */
/* Seeded randomness                                                        */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state;

/* Seeds that differ in any bit give unrelated streams (never state 0). */
static void rnd_seed(uint64_t seed)
{
	rng_state = (seed + 1) * 0x9e3779b97f4a7c15ull;
	if (rng_state == 0)
		rng_state = 1;
}

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in lo..hi, both included. */
static unsigned rnd_in(unsigned lo, unsigned hi)
{
	return lo + (unsigned)(rnd() % ((uint64_t)hi - lo + 1));
}

static bool chance(unsigned percent)
{
	return rnd() % 100 < percent;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : dflt;
}

/* ------------------------------------------------------------------------ */
/* The environment under test and the figures                               */
/* ------------------------------------------------------------------------ */

struct stress {
	MDB_env *env;
	MDB_dbi dbi[NDBS];
	char dir[4096];	  /* the environment's directory */
	char file[4200];  /* its data.mdb */
	uint64_t seed;	  /* of this run, for messages */
	uint64_t append;  /* counter of MDB_APPEND keys */
	uint64_t entries; /* in all named databases, last commit */
	bool writemap;	  /* MDB_WRITEMAP: no nested transactions */
};

static struct {
	uint64_t commits;      /* checked */
	unsigned max_depth;    /* of any database */
	unsigned depth4_dbs;   /* commits with a database of depth >= 4 */
	uint64_t max_overflow; /* overflow pages of all databases at once */
	uint64_t max_free;     /* pages listed free at once */
	uint64_t max_free_rec; /* pages in one free-list record */
	uint64_t max_free_ovf; /* overflow pages of the free-page db */
	uint64_t max_pages;    /* last_pg + 1 */
	uint64_t bad_valsize;  /* puts LMDB refused as MDB_BAD_VALSIZE */
	uint64_t drops;	       /* mdb_drop calls */
	uint64_t appends;      /* puts with MDB_APPEND */
	uint64_t nested;       /* nested transactions committed */
} fig;

static uint8_t keybuf[MAX_KEY + 1];
static uint8_t valbuf[MAX_VALUE];

/* Fill @v with @n bytes that differ from one value to the next. */
static void fill_value(MDB_val *v, size_t n)
{
	uint8_t b = (uint8_t)rnd();

	memset(valbuf, b, n);
	v->mv_size = n;
	v->mv_data = valbuf;
}

/*
 * A random key: first byte below 0xff (keys of MDB_APPEND runs start with
 * 0xff and so sort after every other), length 0..512 with the edges often:
 * LMDB refuses 0 and 512, and the check must accept whatever it keeps.
 */
static void rand_key(MDB_val *k, bool max_keys)
{
	unsigned len, i;

	if (max_keys)
		len = rnd_in(MAX_KEY - 40, MAX_KEY);
	else
		switch (rnd() % 8) {
		case 0:
			len = rnd_in(0, 2);
			break;
		case 1:
			len = rnd_in(MAX_KEY - 2, MAX_KEY + 1);
			break;
		case 2:
		case 3:
			len = rnd_in(1, 16);
			break;
		case 4:
		case 5:
			len = rnd_in(17, 200);
			break;
		default:
			len = rnd_in(201, MAX_KEY);
			break;
		}
	for (i = 0; i < len; i++)
		keybuf[i] = (uint8_t)rnd();
	if (len && keybuf[0] == 0xff)
		keybuf[0] = 0xfe;
	k->mv_size = len;
	k->mv_data = keybuf;
}

/* A value size: mostly small, some around the overflow threshold (about
 * 2 KB for a 4 KB page), some overflow runs of up to five pages. */
static size_t rand_vsize(bool big)
{
	unsigned r = (unsigned)(rnd() % 100);

	if (big || r >= 85)
		return rnd_in(2000, MAX_VALUE);
	if (r < 40)
		return rnd_in(0, 32);
	if (r < 70)
		return rnd_in(33, 500);
	return rnd_in(501, 2100);
}

static void put(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v,
		unsigned flags)
{
	int rc = mdb_put(txn, dbi, k, v, flags);

	if (rc == MDB_BAD_VALSIZE) {
		/* Key of 0 or over MAX_KEY bytes: LMDB keeps nothing. */
		ck_assert_msg(k->mv_size == 0 || k->mv_size > MAX_KEY,
			      "BAD_VALSIZE for a key of %zu bytes", k->mv_size);
		fig.bad_valsize++;
		return;
	}
	if (rc == MDB_KEYEXIST && (flags & MDB_NOOVERWRITE))
		return;
	ck_assert_msg(rc == 0, "mdb_put: %s", mdb_strerror(rc));
}

/* ------------------------------------------------------------------------ */
/* The check after a commit                                                 */
/* ------------------------------------------------------------------------ */

static void keep_failed(const struct stress *s, char *kept, size_t n)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(kept, n, "%s/lmdbstress-%" PRIx64 "-%" PRIu64 ".mdb",
		 tmp && *tmp ? tmp : "/tmp", s->seed, fig.commits);
	if (fx_copy_file(s->file, kept) != 0)
		snprintf(kept, n, "(not kept)");
}

static void note_db(MDB_txn *txn, MDB_dbi dbi, uint64_t *ovf)
{
	MDB_stat st;

	ck_assert_int_eq(mdb_stat(txn, dbi, &st), 0);
	if (st.ms_depth > fig.max_depth)
		fig.max_depth = st.ms_depth;
	*ovf += st.ms_overflow_pages;
}

/* The figures of the snapshot @txn. */
static void note_figures(struct stress *s, MDB_txn *txn)
{
	MDB_envinfo info;
	MDB_cursor *cur;
	MDB_stat st;
	MDB_val k, v;
	uint64_t ovf = 0, nfree = 0, n, entries = 0;
	unsigned i, deepest = 0;
	int rc;

	for (i = 0; i < NDBS; i++) {
		note_db(txn, s->dbi[i], &ovf);
		ck_assert_int_eq(mdb_stat(txn, s->dbi[i], &st), 0);
		entries += st.ms_entries;
		if (st.ms_depth > deepest)
			deepest = st.ms_depth;
	}
	s->entries = entries;
	if (deepest >= 4)
		fig.depth4_dbs++;
	if (ovf > fig.max_overflow)
		fig.max_overflow = ovf;
	/* The free-page database: dbi 0. */
	ck_assert_int_eq(mdb_stat(txn, 0, &st), 0);
	if (st.ms_depth > fig.max_depth)
		fig.max_depth = st.ms_depth;
	if (st.ms_overflow_pages > fig.max_free_ovf)
		fig.max_free_ovf = st.ms_overflow_pages;
	ck_assert_int_eq(mdb_cursor_open(txn, 0, &cur), 0);
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		memcpy(&n, v.mv_data, sizeof n);
		nfree += n;
		if (n > fig.max_free_rec)
			fig.max_free_rec = n;
	}
	ck_assert_int_eq(rc, MDB_NOTFOUND);
	mdb_cursor_close(cur);
	if (nfree > fig.max_free)
		fig.max_free = nfree;
	ck_assert_int_eq(mdb_env_info(s->env, &info), 0);
	if (info.me_last_pgno + 1 > fig.max_pages)
		fig.max_pages = info.me_last_pgno + 1;
}

/* Both checks on the snapshot LMDB now serves from @env and @file. */
static void check_env(struct stress *s, MDB_env *env, const char *file,
		      bool figures)
{
	char kept[4300];
	MDB_txn *txn;
	int rc, tries;

	for (tries = 0;; tries++) {
		ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
		rc = lmdbcheck_snapshot(file, mdb_txn_id(txn),
					(unsigned)mdb_env_get_maxkeysize(env));
		if (rc != 1 || tries == 3)
			break;
		mdb_txn_abort(txn);
	}
	if (rc == 0)
		rc = lmdbcheck_meta(file);
	if (rc != 0) {
		keep_failed(s, kept, sizeof kept);
		ck_abort_msg("seed 0x%" PRIx64 ", commit %" PRIu64
			     ", txn %zu: check says %d: %s (kept as %s)",
			     s->seed, fig.commits, mdb_txn_id(txn), rc,
			     mqlog_errmsg(NULL), kept);
	}
	if (figures)
		note_figures(s, txn);
	mdb_txn_abort(txn);
	fig.commits++;
}

static void commit(struct stress *s, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);

	ck_assert_msg(rc == 0, "commit: %s", mdb_strerror(rc));
	check_env(s, s->env, s->file, true);
}

/* ------------------------------------------------------------------------ */
/* The environment                                                          */
/* ------------------------------------------------------------------------ */

static void open_dbs(struct stress *s)
{
	MDB_txn *txn;
	unsigned i;

	ck_assert_int_eq(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
	for (i = 0; i < NDBS; i++)
		ck_assert_int_eq(mdb_dbi_open(txn, db_name(i), MDB_CREATE,
					      &s->dbi[i]),
				 0);
	commit(s, txn);
}

/*
 * Open (creating) the environment in @dir with LMDB flags @flags, as the
 * index does (MDB_NOTLS, 16 named databases) but with MDB_NOSYNC for
 * speed: syncing changes when bytes reach the disk, not which bytes.
 */
static void env_open(struct stress *s, const char *dir, unsigned flags,
		     uint64_t map_size)
{
	int rc;

	if (!(flags & MDB_NOSUBDIR)) {
		snprintf(s->dir, sizeof s->dir, "%s", dir);
		mkdir(dir, 0755);
		snprintf(s->file, sizeof s->file, "%s/data.mdb", dir);
	} else {
		snprintf(s->file, sizeof s->file, "%s", dir);
	}
	ck_assert_int_eq(mdb_env_create(&s->env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(s->env, 16), 0);
	ck_assert_int_eq(mdb_env_set_mapsize(s->env, (size_t)map_size), 0);
	rc = mdb_env_open(s->env, dir, MDB_NOTLS | MDB_NOSYNC | flags, 0644);
	ck_assert_msg(rc == 0, "mdb_env_open %s: %s", dir, mdb_strerror(rc));
	open_dbs(s);
}

static void env_close(struct stress *s)
{
	mdb_env_close(s->env);
	s->env = NULL;
}

/* ------------------------------------------------------------------------ */
/* The workload                                                             */
/* ------------------------------------------------------------------------ */

static MDB_dbi rand_dbi(struct stress *s)
{
	return s->dbi[rnd() % NDBS];
}

/* @n puts of random keys into random databases (one database when
 * @max_keys, to grow a deep tree). */
static void op_puts(struct stress *s, MDB_txn *txn, unsigned n, bool max_keys,
		    bool big)
{
	MDB_dbi dbi = rand_dbi(s);
	MDB_val k, v;

	while (n--) {
		if (!max_keys && chance(10))
			dbi = rand_dbi(s);
		rand_key(&k, max_keys);
		fill_value(&v, rand_vsize(big));
		put(txn, dbi, &k, &v, chance(10) ? MDB_NOOVERWRITE : 0);
	}
}

/* Rewrite up to @n existing values from a random place on with new sizes:
 * overflow runs grow, shrink in place or become inline values. */
static void op_overwrite(struct stress *s, MDB_txn *txn, unsigned n)
{
	uint8_t at[MAX_KEY];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	ck_assert_int_eq(mdb_cursor_open(txn, rand_dbi(s), &cur), 0);
	rand_key(&k, false);
	if (k.mv_size == 0 || k.mv_size > MAX_KEY)
		k.mv_size = 1;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && n--) {
		/* The key LMDB gave points into the page it rewrites. */
		memcpy(at, k.mv_data, k.mv_size);
		k.mv_data = at;
		fill_value(&v, rand_vsize(chance(30)));
		rc = mdb_cursor_put(cur, &k, &v, MDB_CURRENT);
		ck_assert_msg(rc == 0, "put CURRENT: %s", mdb_strerror(rc));
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	ck_assert_msg(rc == 0 || rc == MDB_NOTFOUND, "%s", mdb_strerror(rc));
	mdb_cursor_close(cur);
}

/* Delete up to @n entries of one database from a random key on. */
static void op_delete_range(struct stress *s, MDB_txn *txn, unsigned n)
{
	uint8_t at[MAX_KEY];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	ck_assert_int_eq(mdb_cursor_open(txn, rand_dbi(s), &cur), 0);
	rand_key(&k, false);
	if (k.mv_size == 0 || k.mv_size > MAX_KEY || chance(20)) {
		keybuf[0] = 0;
		k.mv_size = 1;
	}
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && n--) {
		memcpy(at, k.mv_data, k.mv_size);
		k.mv_data = at;
		rc = mdb_cursor_del(cur, 0);
		ck_assert_msg(rc == 0, "del: %s", mdb_strerror(rc));
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	ck_assert_msg(rc == 0 || rc == MDB_NOTFOUND, "%s", mdb_strerror(rc));
	mdb_cursor_close(cur);
}

/* A run of @n MDB_APPEND puts: 0xff, a counter (big-endian), filler. */
static void op_append(struct stress *s, MDB_txn *txn, unsigned n)
{
	MDB_dbi dbi = rand_dbi(s);
	bool max_keys = chance(50);
	MDB_val k, v;
	unsigned len, i;

	while (n--) {
		s->append++;
		len = max_keys ? rnd_in(MAX_KEY - 10, MAX_KEY) :
				 rnd_in(9, MAX_KEY);
		keybuf[0] = 0xff;
		for (i = 0; i < 8; i++)
			keybuf[1 + i] = (uint8_t)(s->append >> (56 - 8 * i));
		memset(keybuf + 9, (int)(rnd() & 0xff), len - 9);
		k.mv_size = len;
		k.mv_data = keybuf;
		fill_value(&v, rand_vsize(chance(5)));
		put(txn, dbi, &k, &v, MDB_APPEND);
		fig.appends++;
	}
}

/* mdb_drop: empty the database (del 0) or delete it and create it again
 * in the same transaction (del 1). */
static void op_drop(struct stress *s, MDB_txn *txn)
{
	unsigned i = (unsigned)(rnd() % NDBS);
	bool del = chance(50);

	ck_assert_int_eq(mdb_drop(txn, s->dbi[i], del), 0);
	if (del)
		ck_assert_int_eq(mdb_dbi_open(txn, db_name(i), MDB_CREATE,
					      &s->dbi[i]),
				 0);
	fig.drops++;
}

/* The operations of a transaction of kind @r (0..99) in @txn. */
static void txn_body(struct stress *s, MDB_txn *txn, unsigned r)
{
	if (r < 45) {
		/* Many small transactions. */
		unsigned n = rnd_in(1, 6);
		while (n--) {
			if (chance(70))
				op_puts(s, txn, 1, false, false);
			else if (chance(50))
				op_delete_range(s, txn, rnd_in(1, 3));
			else
				op_overwrite(s, txn, 1);
		}
	} else if (r < 65) {
		op_puts(s, txn, rnd_in(20, 200), false, false);
		op_delete_range(s, txn, rnd_in(0, 100));
	} else if (r < 72) {
		/* Big, deep: keys near the largest size, ~7 to a page. */
		op_puts(s, txn, rnd_in(300, 1500), true, false);
	} else if (r < 77) {
		/* Big, overflow runs. */
		op_puts(s, txn, rnd_in(50, 300), false, true);
	} else if (r < 84) {
		op_append(s, txn, rnd_in(20, 1000));
	} else if (r < 89) {
		op_overwrite(s, txn, rnd_in(10, 400));
	} else if (r < 96) {
		/* Frees thousands of pages: a long free list. */
		op_delete_range(s, txn, rnd_in(200, 8000));
	} else {
		op_drop(s, txn);
	}
}

/*
 * One transaction of a kind drawn at random, then the check.  One in ten
 * does its work in a nested transaction that is committed into it or
 * aborted (never a drop there: an aborted child closes the handles it
 * opened), then a few puts of its own.
 */
static void one_txn(struct stress *s)
{
	bool full = s->entries > MAX_ENTRIES;
	unsigned r = (unsigned)(rnd() % 100);
	MDB_txn *txn, *child;

	ck_assert_int_eq(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
	if (full && r < 50)
		r = chance(60) ? 92 : 99; /* a big delete or a drop */
	if (r < 96 && !s->writemap && chance(10)) {
		ck_assert_int_eq(mdb_txn_begin(s->env, txn, 0, &child), 0);
		txn_body(s, child, r);
		if (chance(75)) {
			ck_assert_int_eq(mdb_txn_commit(child), 0);
			fig.nested++;
		} else {
			mdb_txn_abort(child);
		}
		op_puts(s, txn, rnd_in(0, 5), false, false);
	} else {
		txn_body(s, txn, r);
	}
	commit(s, txn);
}

static void print_figures(const char *what)
{
	printf("%s: %" PRIu64 " commits checked, max depth %u (%u commits "
	       "with a tree of depth >= 4), up to %" PRIu64
	       " overflow pages, free list up to %" PRIu64
	       " pages (one record up to %" PRIu64 " pages, %" PRIu64
	       " overflow pages of the free-page db), file up to %" PRIu64
	       " pages, %" PRIu64 " MDB_APPEND puts, %" PRIu64
	       " drops, %" PRIu64 " nested commits, %" PRIu64
	       " keys refused as BAD_VALSIZE\n",
	       what, fig.commits, fig.max_depth, fig.depth4_dbs,
	       fig.max_overflow, fig.max_free, fig.max_free_rec,
	       fig.max_free_ovf, fig.max_pages, fig.appends, fig.drops,
	       fig.nested, fig.bad_valsize);
	fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

/* Every commit of the seeded workload passes both checks. */
START_TEST(test_random_workload)
{
	struct stress s = { 0 };
	uint64_t rounds = env_u64("MQLOG_LMDBSTRESS_ROUNDS", DEFAULT_ROUNDS);
	uint64_t i;

	memset(&fig, 0, sizeof fig);
	s.seed = env_u64("MQLOG_LMDBSTRESS_SEED", DEFAULT_SEED);
	rnd_seed(s.seed);
	env_open(&s, fx_path("%s/env", fx_dir), 0, MAP_SIZE);
	for (i = 0; i < rounds; i++)
		one_txn(&s);
	print_figures("workload");
	/* What the workload is there for did happen. */
	ck_assert_uint_ge(fig.max_depth, rounds >= 1000 ? 4 : 1);
	ck_assert_uint_gt(fig.max_overflow, 0);
	if (rounds >= 1000) {
		ck_assert_uint_gt(fig.max_free_ovf, 0);
		ck_assert_uint_gt(fig.drops, 0);
	}
	env_close(&s);
}
END_TEST

/* A workload of @n commits on @s, to have something to copy. */
static void fill(struct stress *s, unsigned n)
{
	while (n--)
		one_txn(s);
}

/* The copy at @dir (a directory with data.mdb) passes both checks. */
static void check_copy(struct stress *s, const char *dir)
{
	struct stress c = { .seed = s->seed };
	MDB_env *env;
	MDB_txn *txn;
	char file[4200];
	MDB_dbi dbi;

	snprintf(file, sizeof file, "%s/data.mdb", dir);
	ck_assert_int_eq(lmdbcheck_meta(file), 0);
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
	ck_assert_int_eq(mdb_env_open(env, dir, MDB_NOTLS, 0644), 0);
	snprintf(c.file, sizeof c.file, "%s", file);
	check_env(&c, env, file, false);
	/* And goes on living: a commit on the copy. */
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
	ck_assert_int_eq(mdb_drop(txn, dbi, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	check_env(&c, env, file, false);
	mdb_env_close(env);
}

/* A compacting copy and a plain copy of a busy environment, and of an
 * empty one, pass both checks, and so do their next commits. */
START_TEST(test_copies)
{
	struct stress s = { 0 };
	MDB_txn *txn;
	unsigned i;
	const char *d;

	memset(&fig, 0, sizeof fig);
	s.seed = env_u64("MQLOG_LMDBSTRESS_SEED", DEFAULT_SEED) + 1;
	rnd_seed(s.seed);
	env_open(&s, fx_path("%s/env", fx_dir), 0, MAP_SIZE);
	fill(&s, 300);
	for (i = 0; i < 2; i++) {
		d = fx_path("%s/compact%u", fx_dir, i);
		ck_assert_int_eq(mkdir(d, 0755), 0);
		ck_assert_int_eq(mdb_env_copy2(s.env, d, MDB_CP_COMPACT), 0);
		check_copy(&s, d);
		d = fx_path("%s/plain%u", fx_dir, i);
		ck_assert_int_eq(mkdir(d, 0755), 0);
		ck_assert_int_eq(mdb_env_copy2(s.env, d, 0), 0);
		check_copy(&s, d);
		if (i)
			break;
		/* Then an environment with nothing in it: every named
		 * database deleted. */
		ck_assert_int_eq(mdb_txn_begin(s.env, NULL, 0, &txn), 0);
		for (unsigned j = 0; j < NDBS; j++)
			ck_assert_int_eq(mdb_drop(txn, s.dbi[j], 1), 0);
		ck_assert_int_eq(mdb_txn_commit(txn), 0);
		check_env(&s, s.env, s.file, false);
	}
	print_figures("copies");
	env_close(&s);
}
END_TEST

/* A map grown while the environment is closed, and while it is open (as
 * the index does on MDB_MAP_FULL), changes nothing the check refuses. */
START_TEST(test_map_resize)
{
	struct stress s = { 0 };
	const char *dir = fx_path("%s/env", fx_dir);
	MDB_txn *txn;
	MDB_val k, v;
	uint64_t map = 1ull << 20;
	int rc, n, grown = 0;

	memset(&fig, 0, sizeof fig);
	s.seed = env_u64("MQLOG_LMDBSTRESS_SEED", DEFAULT_SEED) + 2;
	rnd_seed(s.seed);
	env_open(&s, dir, 0, map);
	/* Fill a 1 MB map until it is full, then grow it open. */
	while (grown < 4) {
		ck_assert_int_eq(mdb_txn_begin(s.env, NULL, 0, &txn), 0);
		for (n = 0, rc = 0; n < 50 && rc == 0; n++) {
			rand_key(&k, true);
			fill_value(&v, rand_vsize(chance(30)));
			rc = mdb_put(txn, s.dbi[rnd() % NDBS], &k, &v, 0);
		}
		if (rc == MDB_MAP_FULL) {
			mdb_txn_abort(txn);
			map *= 2;
			ck_assert_int_eq(
				mdb_env_set_mapsize(s.env, (size_t)map), 0);
			grown++;
			continue;
		}
		ck_assert_int_eq(rc, 0);
		rc = mdb_txn_commit(txn);
		if (rc == MDB_MAP_FULL) {
			map *= 2;
			ck_assert_int_eq(
				mdb_env_set_mapsize(s.env, (size_t)map), 0);
			grown++;
			continue;
		}
		ck_assert_int_eq(rc, 0);
		check_env(&s, s.env, s.file, true);
	}
	env_close(&s);
	/* Closed, reopened with a map 64 times bigger. */
	env_open(&s, dir, 0, map * 64);
	fill(&s, 100);
	env_close(&s);
	print_figures("map resize");
}
END_TEST

/*
 * LMDB writes the environment's flags below 0x10000 into the meta page of
 * a new file (mdb_env_init_meta0: mm_flags = me_flags & 0xffff, the flags
 * of the free-page database): MDB_NOSUBDIR and MDB_FIXEDMAP stay there for
 * the life of the file, and a compacting copy writes those of the copying
 * environment.  Such a file, opened later as the index opens it, passes;
 * any other flag there is still refused.
 */
START_TEST(test_env_flags_in_meta)
{
	static const unsigned flags[] = { MDB_NOSUBDIR, MDB_FIXEDMAP,
					  MDB_NOSUBDIR | MDB_FIXEDMAP };
	struct stress s = { 0 };
	const char *file, *dir;
	unsigned i;

	memset(&fig, 0, sizeof fig);
	s.seed = env_u64("MQLOG_LMDBSTRESS_SEED", DEFAULT_SEED) + 3;
	rnd_seed(s.seed);
	for (i = 0; i < sizeof flags / sizeof flags[0]; i++) {
		dir = fx_path("%s/env%u", fx_dir, i);
		ck_assert_int_eq(mkdir(dir, 0755), 0);
		file = fx_path("%s/data.mdb", dir);
		if (flags[i] & MDB_NOSUBDIR) {
			env_open(&s, file, flags[i], 64ull << 20);
		} else {
			env_open(&s, dir, flags[i], 64ull << 20);
		}
		fill(&s, 60);
		/* A compacting copy made by this environment. */
		dir = fx_path("%s/copy%u", fx_dir, i);
		ck_assert_int_eq(mkdir(dir, 0755), 0);
		ck_assert_int_eq(
			mdb_env_copy2(s.env,
				      flags[i] & MDB_NOSUBDIR ?
					      fx_path("%s/data.mdb", dir) :
					      dir,
				      MDB_CP_COMPACT),
			0);
		env_close(&s);
		/* Both opened as the index opens them. */
		check_copy(&s, fx_path("%s/env%u", fx_dir, i));
		check_copy(&s, dir);
	}
	/* Any other bit there is still damage. */
	file = fx_path("%s/data.mdb", dir);
	for (i = 0; i < 2; i++) {
		uint16_t bad = i ? 0x400c : 0x0018; /* DUPSORT, DUPFIXED */
		int fd = open(file, O_WRONLY);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(pwrite(fd, &bad, sizeof bad, 16 + 24 + 4),
				 (ssize_t)sizeof bad);
		close(fd);
		ck_assert_int_eq(lmdbcheck_meta(file), MQLOG_ECORRUPT);
	}
	print_figures("env flags");
}
END_TEST

/* MDB_WRITEMAP: LMDB writes pages through its map, flags and all, and the
 * file is as long as the map; what it commits passes all the same. */
START_TEST(test_writemap)
{
	struct stress s = { 0 };

	memset(&fig, 0, sizeof fig);
	s.seed = env_u64("MQLOG_LMDBSTRESS_SEED", DEFAULT_SEED) + 4;
	rnd_seed(s.seed);
	s.writemap = true;
	env_open(&s, fx_path("%s/env", fx_dir), MDB_WRITEMAP, 256ull << 20);
	fill(&s, 300);
	env_close(&s);
	print_figures("writemap");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lmdbstress");
	TCase *tc = tcase_create("lmdbstress");
	SRunner *sr;
	int nf;

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_random_workload);
	tcase_add_test(tc, test_copies);
	tcase_add_test(tc, test_map_resize);
	tcase_add_test(tc, test_env_flags_in_meta);
	tcase_add_test(tc, test_writemap);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
