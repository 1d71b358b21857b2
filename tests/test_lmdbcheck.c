/*
 * test_lmdbcheck.c - the structural check of meta/data.mdb: damage that
 * would make LMDB read outside its file or abort (a child page past the end
 * of the file, a node past the end of its page, an overflow run past the
 * end, a page that is not the page it says, a cycle) makes every open
 * answer MQLOG_ECORRUPT naming the page, and leaves the directory as it
 * was.
 *
 * The index is built through the public API; the damage is written with
 * pwrite at places found by reading the file with a small description of
 * LMDB 0.9's format (64-bit, host byte order), the one lmdbcheck.c
 * documents.
 */
#include "fixture.h"
#include "helpers.h"
#include "internal.h"

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PSIZE	  4096u
#define NO_PAGE	  UINT64_MAX
#define BIG_VALUE 9000u /* an overflow run of three pages */
#define BIG_KEY	  "lmdbcheck-test"

static char file[4200];	  /* fx_dir/meta/data.mdb */
static uint8_t *pristine; /* its bytes after the build */
static size_t plen;

static uint16_t ld16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static uint64_t ld64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static void put_at(size_t at, const void *p, size_t n)
{
	int fd = open(file, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, p, n, (off_t)at), (ssize_t)n);
	close(fd);
}

static void put16(uint64_t pgno, unsigned off, uint16_t v)
{
	put_at(pgno * PSIZE + off, &v, sizeof v);
}

static void put64(uint64_t pgno, unsigned off, uint64_t v)
{
	put_at(pgno * PSIZE + off, &v, sizeof v);
}

static const uint8_t *page(uint64_t pgno)
{
	ck_assert_uint_lt((pgno + 1) * PSIZE, plen + 1);
	return pristine + pgno * PSIZE;
}

/* The meta of the last transaction (page 0 or 1, byte 16). */
static const uint8_t *meta_now(void)
{
	const uint8_t *m0 = page(0) + 16, *m1 = page(1) + 16;
	return ld64(m1 + 128) > ld64(m0 + 128) ? m1 : m0;
}

/* Node @i of page @p. */
static const uint8_t *node(const uint8_t *p, unsigned i)
{
	ck_assert_uint_lt(i, (ld16(p + 12) - 16u) / 2);
	return p + ld16(p + 16 + 2 * i);
}

static unsigned nkeys(const uint8_t *p)
{
	return (ld16(p + 12) - 16u) / 2;
}

/* The db record of the named database @name (main is one leaf here). */
static const uint8_t *named_db(const char *name)
{
	const uint8_t *m = meta_now() + 72;
	const uint8_t *leaf = page(ld64(m + 40));

	ck_assert_uint_eq(ld16(m + 6), 1);
	for (unsigned i = 0; i < nkeys(leaf); i++) {
		const uint8_t *nd = node(leaf, i);
		if (ld16(nd + 6) == strlen(name) &&
		    !memcmp(nd + 8, name, strlen(name)))
			return nd + 8 + ld16(nd + 6);
	}
	ck_abort_msg("no database %s", name);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* The directory as bytes                                                   */
/* ------------------------------------------------------------------------ */

static uint64_t tree_sum;

static int sum_one(const char *path, const struct stat *st, int type,
		   struct FTW *ftw)
{
	size_t len, i;
	uint8_t *d;

	(void)st;
	(void)ftw;
	/* The lock files are written by every open before the index is
	 * read: mqlog's epoch in DIR/lock, LMDB's reader table. */
	len = strlen(path);
	if (type != FTW_F || (len >= 5 && !strcmp(path + len - 5, "/lock")) ||
	    strstr(path, "lock.mdb"))
		return 0;
	d = h_slurp(path, &len);
	for (i = 0; path[i]; i++)
		tree_sum = (tree_sum ^ (uint8_t)path[i]) * 0x100000001b3ull;
	for (i = 0; i < len; i++)
		tree_sum = (tree_sum ^ d[i]) * 0x100000001b3ull;
	tree_sum = (tree_sum ^ len) * 0x100000001b3ull;
	free(d);
	return 0;
}

static uint64_t dir_sum(void)
{
	tree_sum = 0xcbf29ce484222325ull;
	ck_assert_int_eq(nftw(fx_dir, sum_one, 16, FTW_PHYS), 0);
	return tree_sum;
}

/* ------------------------------------------------------------------------ */
/* Fixture: an index with two-level trees and an overflow value             */
/* ------------------------------------------------------------------------ */

static void setup(void)
{
	mqlog_topic_config cfg;
	mqlog_options opts;
	mqlog *db = NULL;
	mqlog_topic *t;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	char val[3000];
	char *big;

	fx_setup();
	snprintf(file, sizeof file, "%s/meta/data.mdb", fx_dir);
	mqlog_options_init(&opts);
	opts.flags = MQLOG_OPEN_CREATE;
	ck_assert_int_eq(mqlog_open(fx_dir, &opts, &db), 0);
	mqlog_topic_config_init(&cfg);
	cfg.segment_bytes = 4096; /* a segment per record: 200 */
	h_create(db, "t", &cfg);
	t = h_topic(db, "t");
	memset(val, 'v', sizeof val - 1);
	val[sizeof val - 1] = '\0';
	for (int i = 0; i < 200; i++)
		h_append1(t, 0, val);
	mqlog_topic_close(t);
	mqlog_close(db);

	/* A value larger than a page, as a foreign tool might leave one in
	 * the meta database: mqlog reads only the keys it knows. */
	big = calloc(1, BIG_VALUE);
	ck_assert_ptr_nonnull(big);
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
	ck_assert_int_eq(mdb_env_set_mapsize(env, 64u << 20), 0);
	ck_assert_int_eq(mdb_env_open(env, fx_path("%s/meta", fx_dir), 0, 0644),
			 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	k.mv_data = (void *)(uintptr_t)BIG_KEY;
	k.mv_size = sizeof BIG_KEY - 1;
	v.mv_data = big;
	v.mv_size = BIG_VALUE;
	ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(big);

	pristine = h_slurp(file, &plen);
	ck_assert_uint_eq(ld64(page(0) + 16 + 24) & 0xffffffffu, PSIZE);
	/* The undamaged index opens. */
	db = h_open(fx_dir);
	mqlog_close(db);
}

static void teardown(void)
{
	free(pristine);
	pristine = NULL;
	fx_teardown();
}

/*
 * Open read-write and read-only: both answer MQLOG_ECORRUPT with "page
 * @pgno" and the advice in the message, and the directory keeps its bytes.
 */
static void expect_corrupt(uint64_t pgno, const char *what)
{
	char want[64];
	mqlog_options opts;
	mqlog *db = NULL;
	uint64_t before = dir_sum();
	int rc;

	snprintf(want, sizeof want, "page %llu ", (unsigned long long)pgno);
	for (int ro = 0; ro < 2; ro++) {
		mqlog_options_init(&opts);
		opts.flags = ro ? MQLOG_OPEN_RDONLY : 0;
		rc = mqlog_open(fx_dir, &opts, &db);
		ck_assert_msg(rc == MQLOG_ECORRUPT, "%s: open%s = %d %s: %s",
			      what, ro ? " read-only" : "", rc,
			      mqlog_errname(rc), mqlog_errmsg(NULL));
		ck_assert_ptr_null(db);
		ck_assert_msg(strstr(mqlog_errmsg(NULL), want) &&
				      strstr(mqlog_errmsg(NULL), "data.mdb") &&
				      strstr(mqlog_errmsg(NULL),
					     "delete meta/"),
			      "%s: message \"%s\" lacks \"%s\"", what,
			      mqlog_errmsg(NULL), want);
		ck_assert_uint_eq(dir_sum(), before);
	}
}

/* The root page of the segment table, a branch page, and its first child. */
static void two_levels(uint64_t *branch, uint64_t *leaf)
{
	const uint8_t *db = named_db("segments");
	const uint8_t *nd;

	ck_assert_uint_eq(ld16(db + 6), 2);
	*branch = ld64(db + 40);
	ck_assert_uint_eq(ld16(page(*branch) + 10), 0x01);
	nd = node(page(*branch), 0);
	*leaf = ld16(nd) | (uint64_t)ld16(nd + 2) << 16 |
		(uint64_t)ld16(nd + 4) << 32;
	ck_assert_uint_eq(ld16(page(*leaf) + 10), 0x02);
}

START_TEST(test_branch_child_past_end)
{
	/* A branch node whose child lies past the end of the file (a SIGBUS
	 * in LMDB, which maps more than the file). */
	uint64_t branch, leaf;
	unsigned off;

	two_levels(&branch, &leaf);
	off = ld16(page(branch) + 16 + 2);
	put16(branch, off, 0x7000); /* node 1: child page 0x7000 */
	put16(branch, off + 2, 0);
	put16(branch, off + 4, 0);
	expect_corrupt(branch, "child past the end");
}
END_TEST

START_TEST(test_node_past_page_end)
{
	/* A node offset at the very end of a leaf page. */
	uint64_t branch, leaf;

	two_levels(&branch, &leaf);
	put16(leaf, 16 + 2 * 3, PSIZE - 2);
	expect_corrupt(leaf, "node offset past the end");

	/* A node whose data size runs past the end of its page. */
	put_at(leaf * PSIZE, page(leaf), PSIZE);
	put16(leaf, ld16(page(leaf) + 16), 0x4000);
	expect_corrupt(leaf, "node data past the end");
}
END_TEST

START_TEST(test_overflow_past_end)
{
	/* The overflow run of the big value: its page number past the end
	 * of the file, then its page count. */
	const uint8_t *db = named_db("meta");
	const uint8_t *leaf = page(ld64(db + 40));
	const uint8_t *nd = NULL;
	uint64_t leaf_pg = ld64(db + 40), ov;
	unsigned i;

	ck_assert_uint_eq(ld16(db + 6), 1);
	for (i = 0; i < nkeys(leaf); i++) {
		nd = node(leaf, i);
		if (ld16(nd + 4) == 0x01)
			break;
	}
	ck_assert_uint_lt(i, nkeys(leaf));
	ov = ld64(nd + 8 + ld16(nd + 6));
	ck_assert_uint_eq(ld16(page(ov) + 10), 0x04);
	ck_assert_uint_eq(ld16(page(ov) + 12), 3);

	put64(leaf_pg, (unsigned)(nd - leaf) + 8 + ld16(nd + 6),
	      plen / PSIZE + 10);
	expect_corrupt(leaf_pg, "overflow page past the end");

	put_at(leaf_pg * PSIZE, leaf, PSIZE);
	put16(ov, 12, 60000); /* pages in the run */
	expect_corrupt(ov, "overflow run past the end");
}
END_TEST

START_TEST(test_pgno_mismatch)
{
	/* A page whose header names another page: the topics root. */
	const uint8_t *db = named_db("topics");
	uint64_t root = ld64(db + 40);

	ck_assert_uint_ne(root, NO_PAGE);
	put64(root, 0, root + 1);
	expect_corrupt(root, "page number mismatch");
}
END_TEST

START_TEST(test_cycle)
{
	/* A branch node pointing back at its own page, then two branch nodes
	 * sharing one child. */
	uint64_t branch, leaf;
	unsigned off;

	two_levels(&branch, &leaf);
	off = ld16(page(branch) + 16 + 2);
	put16(branch, off, (uint16_t)branch);
	put16(branch, off + 2, (uint16_t)(branch >> 16));
	expect_corrupt(branch, "cycle");

	put16(branch, off, (uint16_t)leaf);
	put16(branch, off + 2, (uint16_t)(leaf >> 16));
	expect_corrupt(branch, "shared child");
}
END_TEST

START_TEST(test_meta_page_size)
{
	/* A page size LMDB would take on trust as it opens the file. */
	put_at(16 + 24, &(uint32_t){ 1000 }, 4);
	expect_corrupt(0, "page size");
}
END_TEST

/* A data.mdb above ix_check_every_open_bytes is walked once per boot: the
 * walk leaves meta/checked (boot id, device, inode), and later opens in the
 * same boot of the same file skip it; another boot or another file is
 * walked again, and damage is still found then. */
START_TEST(test_large_walked_once_per_boot)
{
	char marker[4200];
	uint8_t bytes[32];
	mqlog_options opts;
	mqlog *db;
	uint64_t runs, branch, leaf;
	int fd;

	snprintf(marker, sizeof marker, "%s/meta/checked", fx_dir);
	ix_check_every_open_bytes = 0;

	runs = ix_checks_run;
	db = h_open(fx_dir);
	mqlog_close(db);
	ck_assert_uint_gt(ix_checks_run, runs);
	ck_assert_int_eq(access(marker, F_OK), 0);

	/* The same boot, the same file: no walk, read-write or read-only. */
	runs = ix_checks_run;
	db = h_open(fx_dir);
	mqlog_close(db);
	mqlog_options_init(&opts);
	opts.flags = MQLOG_OPEN_RDONLY;
	ck_assert_int_eq(mqlog_open(fx_dir, &opts, &db), 0);
	mqlog_close(db);
	ck_assert_uint_eq(ix_checks_run, runs);

	/* Another boot's marker: walked again, and the marker renewed. */
	fd = open(marker, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, bytes, sizeof bytes, 0),
			 (ssize_t)sizeof bytes);
	bytes[0] ^= 0xff;
	ck_assert_int_eq(pwrite(fd, bytes, sizeof bytes, 0),
			 (ssize_t)sizeof bytes);
	close(fd);
	db = h_open(fx_dir);
	mqlog_close(db);
	ck_assert_uint_eq(ix_checks_run, runs + 1);
	db = h_open(fx_dir);
	mqlog_close(db);
	ck_assert_uint_eq(ix_checks_run, runs + 1);

	/* The same file overwritten in place (same inode) with an older
	 * copy of itself: a lower transaction, walked. */
	{
		size_t olen;
		uint8_t *old = h_slurp(file, &olen);
		mqlog_topic_config tc = h_cfg(1, 1u << 20, MQLOG_SYNC_NONE);

		/* Later transactions, walked (the marker is voided first). */
		db = h_open(fx_dir);
		h_create(db, "later", &tc);
		mqlog_close(db);
		ck_assert_int_eq(unlink(marker), 0);
		db = h_open(fx_dir);
		mqlog_close(db);
		ck_assert_int_eq(access(marker, F_OK), 0);
		runs = ix_checks_run;
		fd = open(file, O_WRONLY | O_TRUNC);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, old, olen), (ssize_t)olen);
		close(fd);
		free(old);
		db = h_open(fx_dir);
		mqlog_close(db);
		ck_assert_uint_eq(ix_checks_run, runs + 1);
	}

	/* The same file cut short in place: LMDB never shrinks it, so it is
	 * walked, and the pages past the cut found missing (not a SIGBUS
	 * inside LMDB). */
	{
		uint64_t root = ld64(named_db("segments") + 40);
		runs = ix_checks_run;
		ck_assert_int_eq(truncate(file, (off_t)(root * PSIZE)), 0);
		mqlog_options_init(&opts);
		ck_assert_int_eq(mqlog_open(fx_dir, &opts, &db),
				 MQLOG_ECORRUPT);
		ck_assert_uint_gt(ix_checks_run, runs);
		ck_assert_int_eq(truncate(file, (off_t)plen), 0);
		put_at(0, pristine, plen);
	}

	/* Another file under the same name (restored from a copy): walked,
	 * and its damage found. */
	{
		char copy[4300];
		size_t len;
		uint8_t *now = h_slurp(file, &len);

		snprintf(copy, sizeof copy, "%s.copy", file);
		fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, now, len), (ssize_t)len);
		close(fd);
		free(now);
		ck_assert_int_eq(rename(copy, file), 0);
	}
	two_levels(&branch, &leaf);
	put16(branch, ld16(page(branch) + 16 + 2), 0x7000);
	put16(branch, ld16(page(branch) + 16 + 2) + 2, 0);
	put16(branch, ld16(page(branch) + 16 + 2) + 4, 0);
	runs = ix_checks_run;
	expect_corrupt(branch, "a restored copy");
	ck_assert_uint_gt(ix_checks_run, runs);
	ix_check_every_open_bytes = IX_CHECK_EVERY_OPEN_BYTES;
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lmdbcheck");
	TCase *tc = tcase_create("lmdbcheck");
	SRunner *sr;
	int nf;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_branch_child_past_end);
	tcase_add_test(tc, test_node_past_page_end);
	tcase_add_test(tc, test_overflow_past_end);
	tcase_add_test(tc, test_pgno_mismatch);
	tcase_add_test(tc, test_cycle);
	tcase_add_test(tc, test_meta_page_size);
	tcase_add_test(tc, test_large_walked_once_per_boot);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
