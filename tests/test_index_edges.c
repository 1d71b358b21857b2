/*
 * test_index_edges.c - the LMDB environment on its edges: derived values
 * and keys that do not decode (lookups answer MQLOG_ECORRUPT naming the
 * database, truncate and trim remove them), read-only opens of an
 * environment that is empty, incomplete or older than the intents
 * database, a map asked larger than the one recorded, and the argument and
 * state checks of groups and delivery intents.
 *
 * Damage is written with LMDB itself while the index is closed, as a bug
 * or a foreign tool would leave it.
 */
#include "internal.h"
#include "fixture.h"

#include <check.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char meta[4096]; /* fx_dir/meta of the current test */

static void setup(void)
{
	fx_setup();
	snprintf(meta, sizeof meta, "%s/meta", fx_dir);
}

/* The calling thread's last message contains @needle. */
#define ck_msg_has(needle)                                               \
	ck_assert_msg(strstr(mqlog_errmsg(NULL), (needle)) != NULL,      \
		      "message \"%s\" lacks \"%s\"", mqlog_errmsg(NULL), \
		      (needle))

static struct index *open_ix(bool rdonly, uint64_t map_size)
{
	struct index *ix = NULL;
	int rc = index_open(meta, rdonly, map_size, &ix);

	ck_assert_msg(rc == 0, "index_open: %d %s", rc, mqlog_errmsg(NULL));
	ck_assert_ptr_nonnull(ix);
	return ix;
}

/* ------------------------------------------------------------------------ */
/* Raw LMDB access while the index is closed                                */
/* ------------------------------------------------------------------------ */

struct raw {
	MDB_env *env;
	MDB_txn *txn;
};

/* Open @dir with LMDB (creating data.mdb if needed) and begin a write txn. */
static void raw_begin(struct raw *r, const char *dir)
{
	mkdir(dir, 0755);
	ck_assert_int_eq(mdb_env_create(&r->env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(r->env, 16), 0);
	ck_assert_int_eq(mdb_env_set_mapsize(r->env, 64u << 20), 0);
	ck_assert_int_eq(mdb_env_open(r->env, dir, MDB_NOTLS, 0644), 0);
	ck_assert_int_eq(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
}

static void raw_end(struct raw *r)
{
	ck_assert_int_eq(mdb_txn_commit(r->txn), 0);
	mdb_env_close(r->env);
}

static MDB_dbi raw_db(struct raw *r, const char *name)
{
	MDB_dbi dbi;
	ck_assert_int_eq(mdb_dbi_open(r->txn, name, MDB_CREATE, &dbi), 0);
	return dbi;
}

static void raw_put(struct raw *r, const char *db, const void *k, size_t kl,
		    const void *v, size_t vl)
{
	MDB_val key = { kl, (void *)(uintptr_t)k };
	MDB_val val = { vl, (void *)(uintptr_t)v };
	ck_assert_int_eq(mdb_put(r->txn, raw_db(r, db), &key, &val, 0), 0);
}

static void be32(uint8_t *p, uint32_t x)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(x >> (24 - 8 * i));
}

static void be64(uint8_t *p, uint64_t x)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(x >> (56 - 8 * i));
}

/* Key (tid, part) followed by @n big-endian u64s. */
static size_t key(uint8_t *k, uint32_t tid, uint32_t part, size_t n,
		  const uint64_t *tail)
{
	be32(k, tid);
	be32(k + 4, part);
	for (size_t i = 0; i < n; i++)
		be64(k + 8 + 8 * i, tail[i]);
	return 8 + 8 * n;
}

/*
 * Damage partition @part of topic 1: a too-short value for the offset
 * entry 15, the time entry (150, 15), the segment summary of base 50 and
 * the partition record; a time key and an offset key of the wrong size.
 */
static void damage(uint32_t part)
{
	static const uint8_t short_val[2] = { 1, 0 }; /* version 1, no fields */
	struct raw r;
	uint8_t k[32];
	uint64_t t[2];
	size_t kl;

	raw_begin(&r, meta);
	t[0] = 15;
	kl = key(k, 1, part, 1, t);
	raw_put(&r, "offset_index", k, kl, short_val, sizeof short_val);
	t[0] = 150 ^ (1ull << 63);
	t[1] = 15;
	kl = key(k, 1, part, 2, t);
	raw_put(&r, "time_index", k, kl, short_val, sizeof short_val);
	t[0] = 50;
	kl = key(k, 1, part, 1, t);
	raw_put(&r, "segments", k, kl, short_val, sizeof short_val);
	kl = key(k, 1, part, 0, t);
	raw_put(&r, "partitions", k, kl, short_val, sizeof short_val);
	/* Keys of a foreign shape inside the partition's range. */
	memset(k + 8, 0xEE, 4);
	raw_put(&r, "time_index", k, 12, short_val, sizeof short_val);
	raw_put(&r, "offset_index", k, 12, short_val, sizeof short_val);
	raw_end(&r);
}

/* Good entries of topic 1, partition @part: offsets 0 and 10 in segment 0,
 * time entries before them, and the summary of segment 0 (ends at 20). */
static void good_entries(struct index *ix, uint32_t part)
{
	struct index_entry oe[2] = { { 0, 0, 0 }, { 10, 0, 700 } };
	struct time_entry te[2] = { { INT64_MIN, 0, 0, 0 },
				    { 90, 10, 0, 700 } };
	struct seg_meta sm = { 0, 1400, 20, 190 };
	ck_assert_int_eq(index_write(ix, 1, part, oe, 2, te, 2, &sm, 1), 0);
}

static int count_cb(void *arg, const struct index_entry *e)
{
	(void)e;
	(*(size_t *)arg)++;
	return 0;
}

static int count_time_cb(void *arg, const struct time_entry *e)
{
	(void)e;
	(*(size_t *)arg)++;
	return 0;
}

/* ------------------------------------------------------------------------ */

/* Derived values that do not decode: each lookup that lands on one is
 * MQLOG_ECORRUPT naming the database, lookups beside it still answer, and
 * truncate and trim delete them along with keys of a foreign shape. */
START_TEST(test_undecodable_derived_entries)
{
	struct index *ix = open_ix(false, 0);
	struct index_entry e;
	struct time_entry te;
	struct seg_meta sm;
	struct part_meta pm;
	size_t n;

	good_entries(ix, 0);
	good_entries(ix, 1);
	ck_assert_int_eq(index_part_put(ix, 1, 0, &(struct part_meta){ 3 }), 0);
	index_close(ix);
	damage(0);
	damage(1);
	ix = open_ix(false, 0);

	ck_assert_int_eq(index_floor_offset(ix, 1, 0, 15, &e), MQLOG_ECORRUPT);
	ck_msg_has("offset_index: bad entry");
	ck_msg_has("data.mdb");
	ck_assert_int_eq(index_floor_offset(ix, 1, 0, 14, &e), 0);
	ck_assert_uint_eq(e.offset, 10);
	ck_assert_uint_eq(e.pos, 700);
	ck_assert_int_eq(index_floor_time(ix, 1, 0, 151, &te), MQLOG_ECORRUPT);
	ck_msg_has("time_index: bad entry");
	ck_assert_int_eq(index_floor_time(ix, 1, 0, 150, &te), 0);
	ck_assert_uint_eq(te.offset, 10);
	ck_assert_int_eq(index_seg_get(ix, 1, 0, 50, &sm), MQLOG_ECORRUPT);
	ck_msg_has("segments: bad entry");
	ck_assert_int_eq(index_seg_get(ix, 1, 0, 0, &sm), 0);
	ck_assert_uint_eq(sm.end_offset, 20);
	ck_assert_int_eq(index_part_get(ix, 1, 0, &pm), MQLOG_ECORRUPT);
	ck_msg_has("partitions: bad value");
	n = 0;
	ck_assert_int_eq(index_foreach_offset(ix, 1, 0, count_cb, &n),
			 MQLOG_ECORRUPT);
	ck_msg_has("offset_index: bad entry");

	/* Truncating partition 0 at 14 removes the bad entries above it,
	 * the foreign time key and the summary that does not decode. */
	ck_assert_int_eq(index_truncate(ix, 1, 0, 14), 0);
	ck_assert_int_eq(index_floor_offset(ix, 1, 0, 15, &e), 0);
	ck_assert_uint_eq(e.offset, 10);
	ck_assert_int_eq(index_seg_get(ix, 1, 0, 50, &sm), MQLOG_ENOENT);
	n = 0;
	ck_assert_int_eq(index_foreach_time(ix, 1, 0, count_time_cb, &n), 0);
	ck_assert_uint_eq(n, 2);
	/* The offset key of a foreign shape sorted above 14 and went too:
	 * the walk now sees the two good entries only. */
	n = 0;
	ck_assert_int_eq(index_foreach_offset(ix, 1, 0, count_cb, &n), 0);
	ck_assert_uint_eq(n, 2);

	/* Trimming partition 1 below 12 removes the good entries below it
	 * and everything that does not decode; the entry at 15 stays. */
	ck_assert_int_eq(index_trim(ix, 1, 1, 12), 0);
	ck_assert_int_eq(index_seg_get(ix, 1, 1, 50, &sm), MQLOG_ENOENT);
	ck_assert_int_eq(index_floor_offset(ix, 1, 1, 14, &e), MQLOG_ENOENT);
	n = 0;
	ck_assert_int_eq(index_foreach_time(ix, 1, 1, count_time_cb, &n),
			 MQLOG_ECORRUPT);
	ck_assert_int_eq(index_trim(ix, 1, 1, 16), 0);
	n = 0;
	ck_assert_int_eq(index_foreach_offset(ix, 1, 1, count_cb, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(index_foreach_time(ix, 1, 1, count_time_cb, &n), 0);
	ck_assert_uint_eq(n, 0);
	/* Nothing to write is a no-op. */
	ck_assert_int_eq(index_write(ix, 1, 1, NULL, 0, NULL, 0, NULL, 0), 0);
	index_close(ix);
}
END_TEST

/* ------------------------------------------------------------------------ */

/* Read-only opens of environments that were never completed: empty, with
 * a database missing, without the format record; and of one written
 * before the intents database existed, which opens and has no intents. */
START_TEST(test_readonly_incomplete_environments)
{
	struct index *ix = NULL;
	struct intent_item *items = (void *)1;
	struct raw r;
	MDB_val k;
	size_t n = 7;

	/* An environment with no database at all. */
	raw_begin(&r, meta);
	raw_end(&r);
	ck_assert_int_eq(index_open(meta, true, 0, &ix), MQLOG_ENOENT);
	ck_assert_ptr_null(ix);
	ck_msg_has("database meta missing");

	/* Only "meta": the next one is missing, an older version. */
	raw_begin(&r, meta);
	(void)raw_db(&r, "meta");
	raw_end(&r);
	ck_assert_int_eq(index_open(meta, true, 0, &ix), MQLOG_EVERSION);
	ck_assert_ptr_null(ix);
	ck_msg_has("database topics missing");

	/* Complete, but without the format record. */
	ix = open_ix(false, 0);
	index_close(ix);
	ix = NULL;
	raw_begin(&r, meta);
	k = (MDB_val){ strlen("format_version"),
		       (void *)(uintptr_t) "format_version" };
	ck_assert_int_eq(mdb_del(r.txn, raw_db(&r, "meta"), &k, NULL), 0);
	raw_end(&r);
	ck_assert_int_eq(index_open(meta, true, 0, &ix), MQLOG_ENOENT);
	ck_assert_ptr_null(ix);
	ck_msg_has("not initialised");

	/* A read-write open writes it again; then drop "intents". */
	ix = open_ix(false, 0);
	index_close(ix);
	raw_begin(&r, meta);
	ck_assert_int_eq(mdb_drop(r.txn, raw_db(&r, "intents"), 1), 0);
	raw_end(&r);
	ix = open_ix(true, 0);
	ck_assert_int_eq(index_intent_list(ix, "g", 1, UINT32_MAX, &items, &n),
			 0);
	ck_assert_uint_eq(n, 0);
	index_close(ix);
}
END_TEST

/* A map size asked larger than the recorded one is adopted and used; a
 * path too long for the environment is refused before anything is made. */
START_TEST(test_map_size_and_path)
{
	struct index *ix = open_ix(false, 1u << 20);
	struct index_entry e = { 5, 0, 40 }, got;
	char *longp;

	ck_assert_int_eq(index_write(ix, 2, 0, &e, 1, NULL, 0, NULL, 0), 0);
	index_close(ix);
	ix = open_ix(false, 64u << 20);
	ck_assert_int_eq(index_floor_offset(ix, 2, 0, 9, &got), 0);
	ck_assert_uint_eq(got.pos, 40);
	index_close(ix);

	longp = malloc(4200);
	ck_assert_ptr_nonnull(longp);
	memset(longp, 'x', 4199);
	longp[0] = '/';
	longp[4199] = '\0';
	ix = NULL;
	ck_assert_int_eq(index_open(longp, false, 0, &ix), MQLOG_EINVAL);
	ck_assert_ptr_null(ix);
	/* (The message names the path, which is too long to show whole.) */
	ck_msg_has("xxxxxxxx");
	free(longp);
}
END_TEST

/* ------------------------------------------------------------------------ */

struct add_member {
	uint64_t id; /* member to add */
};

static int add_member_fn(struct group_snap *s, void *arg)
{
	const struct add_member *a = arg;
	struct group_member m;

	memset(&m, 0, sizeof m);
	m.id = a->id;
	m.pid = 1;
	m.lease_ms = 1000;
	s->members[s->nmembers++] = m;
	s->exists = true;
	s->generation++;
	return 0;
}

/* Group names are checked; a group without state is MQLOG_ENOENT; a group
 * of many members loads whole; one pending intent per record; deleting a
 * topic drops its groups only. */
START_TEST(test_groups_and_intents)
{
	struct index *ix = open_ix(false, 0);
	struct group_snap s;
	struct intent_item *items = NULL;
	char longname[GROUP_NAME_MAX + 2];
	uint64_t gen = 0;
	uint32_t tid1 = 0, tid2 = 0;
	size_t n = 0;

	ck_assert_int_eq(index_group_peek(ix, NULL, 1, &gen), MQLOG_EINVAL);
	ck_msg_has("group name is NULL");
	memset(longname, 'g', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	ck_assert_int_eq(index_group_peek(ix, longname, 1, &gen), MQLOG_EINVAL);
	ck_msg_has("group name of 250 bytes");
	ck_assert_int_eq(index_group_peek(ix, "", 1, &gen), MQLOG_EINVAL);
	ck_assert_int_eq(index_group_peek(ix, "g", 1, &gen), MQLOG_ENOENT);
	ck_msg_has("no state");

	ck_assert_int_eq(index_topic_create(ix, "a", NULL, &tid1), 0);
	ck_assert_int_eq(index_topic_create(ix, "b", NULL, &tid2), 0);
	ck_assert_uint_ne(tid1, tid2);
	/* Twenty members, one per transaction. */
	for (uint64_t id = 1; id <= 20; id++) {
		struct add_member a = { id };
		ck_assert_int_eq(index_group_update(ix, "g", tid1, 2, false,
						    add_member_fn, &a),
				 0);
	}
	{
		struct add_member a = { 99 };
		ck_assert_int_eq(index_group_update(ix, "g", tid2, 2, false,
						    add_member_fn, &a),
				 0);
	}
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(index_group_read(ix, "g", tid1, 2, &s), 0);
	ck_assert_uint_eq(s.nmembers, 20);
	for (size_t i = 0; i < s.nmembers; i++)
		ck_assert_uint_eq(s.members[i].id, i + 1);
	ck_assert_uint_eq(s.generation, 20);
	group_snap_free(&s);

	/* One intent per record: a second for the same one is refused. */
	{
		struct add_member a = { 21 };
		ck_assert_int_eq(index_group_update_intent(ix, "g", tid1, 2,
							   add_member_fn, &a, 1,
							   77, "nack", 4),
				 0);
		a.id = 22;
		ck_assert_int_eq(index_group_update_intent(ix, "g", tid1, 2,
							   add_member_fn, &a, 1,
							   77, "dlq", 3),
				 MQLOG_EEXIST);
		ck_msg_has("already pending");
	}
	ck_assert_int_eq(index_intent_list(ix, "g", tid1, 1, &items, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(items[0].offset, 77);
	ck_assert_uint_eq(items[0].len, 4);
	ck_assert_int_eq(memcmp(items[0].val, "nack", 4), 0);
	index_intents_free(items, n);
	/* Deleting one that is not there is not an error. */
	ck_assert_int_eq(index_intent_del(ix, "g", tid1, 1, 78), 0);
	ck_assert_int_eq(index_intent_del(ix, "g", tid1, 1, 77), 0);
	ck_assert_int_eq(index_intent_list(ix, "g", tid1, 1, &items, &n), 0);
	ck_assert_uint_eq(n, 0);
	index_intents_free(items, n);

	/* Deleting topic "a" drops its group and leaves b's. */
	ck_assert_int_eq(index_topic_delete(ix, "a", tid1), 0);
	ck_assert_int_eq(index_group_peek(ix, "g", tid1, &gen), MQLOG_ENOENT);
	ck_assert_int_eq(index_group_peek(ix, "g", tid2, &gen), 0);
	ck_assert_uint_eq(gen, 1);
	index_close(ix);

	/* A read-only handle refuses to trim. */
	ix = open_ix(true, 0);
	ck_assert_int_eq(index_trim(ix, tid2, 0, 5), MQLOG_ERDONLY);
	ck_msg_has("read-only");
	index_close(ix);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("index_edges");
	TCase *tc = tcase_create("index_edges");
	SRunner *sr;
	int nf;

	tcase_add_checked_fixture(tc, setup, fx_teardown);
	tcase_add_test(tc, test_undecodable_derived_entries);
	tcase_add_test(tc, test_readonly_incomplete_environments);
	tcase_add_test(tc, test_map_size_and_path);
	tcase_add_test(tc, test_groups_and_intents);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
