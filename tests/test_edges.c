/*
 * test_edges.c - edges of the public API that the module suites leave out:
 * argument checks of consumers, groups and readers, standalone and fenced
 * group calls, group listing order, damaged LMDB values (a newer format,
 * bad counters, malformed group records), data directory paths, the
 * MQLOG_CRASH_POINT environment variable, and committed offsets left past
 * the log end (recovery sets them back to it).
 *
 * Every call that must fail is checked for its error code, for a message
 * that names what was wrong, and for leaving things as they were.
 */
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "helpers.h"

static char *dir;

static void setup(void)
{
	fx_setup();
	dir = fx_tmpdir();
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	fx_rmtree(dir);
	free(dir);
	fx_teardown();
}

/* A directory with topic "t" of @parts partitions and @n records in each. */
static mqlog *make_db(uint32_t parts, unsigned n)
{
	mqlog *db = h_open(dir);
	mqlog_topic_config c = h_cfg(parts, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_topic *t;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	for (uint32_t p = 0; p < parts; p++)
		for (unsigned i = 0; i < n; i++)
			h_append1(t, p, "v");
	mqlog_topic_close(t);
	return db;
}

static mqlog_consumer_options member_opts(const char *group)
{
	mqlog_consumer_options o;

	mqlog_consumer_options_init(&o);
	o.group = group;
	o.commit_mode = MQLOG_COMMIT_MANUAL;
	o.heartbeat_ms = 20;
	o.lease_ms = 2000;
	return o;
}

/* ======================================================================== */
/* Consumer options and arguments                                           */
/* ======================================================================== */

START_TEST(test_consumer_bad_options)
{
	mqlog *db = make_db(2, 1);
	mqlog_topic *t = h_topic(db, "t");
	mqlog_consumer *c = NULL;
	char longname[300];
	static const struct {
		int what;
		const char *needle;
	} cases[] = {
		{ 0, "strategy 9" },
		{ 1, "commit mode 5" },
		{ 2, "commit mode -1" },
		{ 3, "heartbeat_ms 0" },
		{ 4, "heartbeat_ms 3600001" },
		{ 5, "lease_ms 30" },
		{ 6, "auto_commit_interval_ms 86400001" },
		{ 7, "reset_offset" },
		{ 8, "invalid group name \"a/b\"" },
		{ 9, "..." },
		{ 10, "lease_ms 86400001" },
	};

	memset(longname, 'g', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mqlog_consumer_options o = member_opts("g");
		switch (cases[i].what) {
		case 0:
			o.strategy = 9;
			break;
		case 1:
			o.commit_mode = 5;
			break;
		case 2:
			o.commit_mode = -1;
			break;
		case 3:
			o.heartbeat_ms = 0;
			break;
		case 4:
			o.heartbeat_ms = 3600001;
			break;
		case 5:
			o.lease_ms = 30;
			break;
		case 6:
			o.auto_commit_interval_ms = 86400001;
			break;
		case 7:
			o.reset_offset = 5;
			break;
		case 8:
			o.group = "a/b";
			break;
		case 9:
			o.group = longname;
			break;
		case 10:
			o.lease_ms = 86400001;
			break;
		}
		c = NULL;
		ck_assert_int_eq(mqlog_consumer_open(t, &o, &c), MQLOG_EINVAL);
		ck_assert_ptr_null(c);
		h_msg_has(cases[i].needle);
	}
	ck_assert_int_eq(mqlog_consumer_open(NULL, NULL, &c), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_open(t, NULL, NULL), MQLOG_EINVAL);
	/* Nothing of the failed members stayed behind. */
	mqlog_group_info *gi = NULL;
	ck_assert_int_eq(mqlog_group_describe(db, "g", "t", &gi), MQLOG_ENOENT);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_consumer_standalone_calls)
{
	mqlog *db = make_db(3, 4);
	mqlog_topic *t = h_topic(db, "t");
	mqlog_consumer *c = NULL;
	mqlog_partition_offset po = { 0, 1 };
	uint32_t parts[4], one = 1, bad = 3;
	size_t n = 9;
	uint64_t off = 77;

	ck_assert_int_eq(mqlog_consumer_open(t, NULL, &c), 0);
	/* Offsets and heartbeats are group business. */
	ck_assert_int_eq(mqlog_consumer_commit(c), MQLOG_EINVAL);
	h_msg_has("needs a group");
	ck_assert_int_eq(mqlog_consumer_commit_offsets(c, &po, 1),
			 MQLOG_EINVAL);
	h_msg_has("needs a group");
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), MQLOG_EINVAL);
	h_msg_has("need a group");
	ck_assert_uint_eq(off, 77);
	ck_assert_int_eq(mqlog_consumer_heartbeat(c), 0);
	ck_assert_uint_eq(mqlog_consumer_member_id(c), 0);
	ck_assert_uint_eq(mqlog_consumer_generation(c), 0);
	ck_assert_uint_eq(mqlog_consumer_generation(NULL), 0);
	ck_assert_uint_eq(mqlog_consumer_member_id(NULL), 0);

	/* Partitions not assigned, out of range, NULL arguments. */
	ck_assert_int_eq(mqlog_consumer_position(c, 1, &off), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_seek(c, 1, 0), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_seek_time(c, 1, 0), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_assign(c, &bad, 1), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_assign(c, NULL, 1), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_assignment(c, NULL, 4, &n),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_assignment(c, parts, 4, NULL),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_assignment(c, parts, 4, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(mqlog_consumer_seek(NULL, 0, 0), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_seek_time(NULL, 0, 0), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_position(NULL, 0, &off), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_commit(NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_commit_offsets(NULL, &po, 1),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_commit_offsets(c, NULL, 1),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_committed(NULL, 0, &off), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_heartbeat(NULL), MQLOG_EINVAL);

	/* The assignment works after all that, reads and seeks. */
	ck_assert_int_eq(mqlog_consumer_assign(c, &one, 1), 0);
	ck_assert_int_eq(mqlog_consumer_position(c, 1, &off), 0);
	ck_assert_uint_eq(off, 0);
	ck_assert_int_eq(mqlog_consumer_seek(c, 1, 5), MQLOG_ERANGE);
	ck_assert_int_eq(mqlog_consumer_position(c, 1, &off), 0);
	ck_assert_uint_eq(off, 0);
	ck_assert_int_eq(mqlog_consumer_seek(c, 1, 3), 0);
	mqlog_record recs[8];
	ck_assert_int_eq(mqlog_consumer_poll(c, recs, 8, 0, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(recs[0].offset, 3);
	ck_assert_uint_eq(recs[0].partition, 1);
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ======================================================================== */
/* Group members: explicit commits, fencing, listing                        */
/* ======================================================================== */

START_TEST(test_group_member_calls)
{
	mqlog *db = make_db(2, 5);
	mqlog_topic *t = h_topic(db, "t");
	mqlog_consumer_options o = member_opts("g");
	mqlog_consumer *c = NULL;
	mqlog_partition_offset po[3] = { { 0, 1000 }, { 1, 2 }, { 0, 0 } };
	uint64_t off = 0;
	mqlog_record recs[16];
	size_t n;

	ck_assert_int_eq(mqlog_consumer_open(t, &o, &c), 0);
	ck_assert_uint_ne(mqlog_consumer_member_id(c), 0);
	ck_assert_uint_gt(mqlog_consumer_generation(c), 0);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), MQLOG_ENOENT);
	h_msg_has("no committed offset");
	ck_assert_int_eq(mqlog_consumer_committed(c, 2, &off), MQLOG_EINVAL);
	h_msg_has("out of range");
	ck_assert_int_eq(mqlog_consumer_commit_offsets(c, po, 3), MQLOG_EINVAL);
	h_msg_has("3 offsets for 2 partitions");
	/* Nothing to commit is a success that writes nothing. */
	ck_assert_int_eq(mqlog_consumer_commit_offsets(c, po, 0), 0);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), MQLOG_ENOENT);
	/* Past the end: clamped to it. */
	ck_assert_int_eq(mqlog_consumer_commit_offsets(c, po, 2), 0);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 5);
	ck_assert_int_eq(mqlog_consumer_committed(c, 1, &off), 0);
	ck_assert_uint_eq(off, 2);
	ck_assert_int_eq(mqlog_consumer_heartbeat(c), 0);

	/* A forced reset removes the member: its calls are fenced ... */
	ck_assert_int_eq(mqlog_group_reset_offsets(db, "g", "t", 1, 0),
			 MQLOG_EBUSY);
	ck_assert_int_eq(mqlog_group_reset_offsets(db, "g", "t", 1,
						   MQLOG_RESET_FORCE),
			 0);
	ck_assert_int_eq(mqlog_consumer_commit_offsets(c, po, 2), MQLOG_ESTALE);
	h_msg_has("removed from the group");
	ck_assert_int_eq(mqlog_consumer_heartbeat(c), MQLOG_ESTALE);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 1);
	/* ... until its next poll rejoins at the reset offsets. */
	uint64_t seen[2] = { 1, 1 };
	for (int i = 0; i < 100 && (seen[0] < 5 || seen[1] < 5); i++) {
		ck_assert_int_eq(mqlog_consumer_poll(c, recs, 16, 20, &n), 0);
		for (size_t k = 0; k < n; k++) {
			ck_assert_uint_eq(recs[k].offset,
					  seen[recs[k].partition]);
			seen[recs[k].partition]++;
		}
	}
	ck_assert_uint_eq(seen[0], 5);
	ck_assert_uint_eq(seen[1], 5);
	ck_assert_int_eq(mqlog_consumer_commit(c), 0);
	ck_assert_int_eq(mqlog_consumer_committed(c, 1, &off), 0);
	ck_assert_uint_eq(off, 5);
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_group_list_order_and_errors)
{
	mqlog *db = make_db(1, 2);
	mqlog_topic_config cfg = h_cfg(2, 1 << 20, MQLOG_SYNC_NONE);
	static const char *const pairs[][2] = {
		{ "zeta", "t" },
		{ "alpha", "u" },
		{ "alpha", "t" },
		{ "mid", "u" },
	};
	mqlog_group_info *gl = NULL, *gi = NULL;
	size_t n = 0;

	h_create(db, "u", &cfg);
	for (size_t i = 0; i < 4; i++) {
		mqlog_topic *t = h_topic(db, pairs[i][1]);
		mqlog_consumer_options o = member_opts(pairs[i][0]);
		mqlog_consumer *c = NULL;
		ck_assert_int_eq(mqlog_consumer_open(t, &o, &c), 0);
		mqlog_consumer_close(c);
		mqlog_topic_close(t);
	}
	ck_assert_int_eq(mqlog_group_list(db, &gl, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(gl[0].group, "alpha");
	ck_assert_str_eq(gl[0].topic, "t");
	ck_assert_str_eq(gl[1].group, "alpha");
	ck_assert_str_eq(gl[1].topic, "u");
	ck_assert_uint_eq(gl[1].partition_count, 2);
	ck_assert_str_eq(gl[2].group, "mid");
	ck_assert_str_eq(gl[3].group, "zeta");
	ck_assert_uint_eq(gl[3].live_members, 0);
	mqlog_group_info_free(gl, n);

	ck_assert_int_eq(mqlog_group_list(NULL, &gl, &n), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_group_describe(NULL, "g", "t", &gi),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_group_describe(db, NULL, "t", &gi),
			 MQLOG_EINVAL);
	h_msg_has("group name is NULL");
	ck_assert_int_eq(mqlog_group_describe(db, "..", "t", &gi),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_group_describe(db, "zeta", "nope", &gi),
			 MQLOG_ENOENT);
	ck_assert_int_eq(mqlog_group_describe(db, "zeta", "u", &gi),
			 MQLOG_ENOENT);
	h_msg_has("no such group");
	ck_assert_int_eq(mqlog_group_reset_offsets(NULL, "g", "t", 0, 0),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_group_reset_offsets(db, "g", "t", 0, 0x10),
			 MQLOG_EINVAL);
	h_msg_has("unknown flags");
	ck_assert_int_eq(mqlog_group_reset_offsets(db, "zeta", "nope", 0, 0),
			 MQLOG_ENOENT);
	/* Reset by time: the first record stamped at or after it. */
	ck_assert_int_eq(mqlog_group_reset_offsets_time(db, "zeta", "t",
							INT64_MAX, 0),
			 0);
	ck_assert_int_eq(mqlog_group_describe(db, "zeta", "t", &gi), 0);
	ck_assert_int_eq(gi->partitions[0].has_committed, 1);
	ck_assert_uint_eq(gi->partitions[0].committed, 2);
	ck_assert_uint_eq(gi->lag, 0);
	mqlog_group_info_free(gi, 1);
	mqlog_close(db);

	/* Read-only: inspection works, resets are refused. */
	mqlog_options ro;
	mqlog_options_init(&ro);
	ro.flags = MQLOG_OPEN_RDONLY;
	ck_assert_int_eq(mqlog_open(dir, &ro, &db), 0);
	ck_assert_int_eq(mqlog_group_reset_offsets(db, "zeta", "t", 0, 0),
			 MQLOG_ERDONLY);
	ck_assert_int_eq(mqlog_group_list(db, &gl, &n), 0);
	ck_assert_uint_eq(n, 4);
	mqlog_group_info_free(gl, n);
	mqlog_close(db);
}
END_TEST

/* ======================================================================== */
/* Damaged LMDB values                                                      */
/* ======================================================================== */

/* Put (or, with @v NULL, delete) a key of database @name in DIR/meta. */
static void lmdb_put(const char *name, const void *k, size_t kl, const void *v,
		     size_t vl)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val key = { kl, (void *)(uintptr_t)k };
	MDB_val val = { vl, (void *)(uintptr_t)v };

	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 32), 0);
	ck_assert_int_eq(mdb_env_open(env, fx_path("%s/meta", dir), 0, 0644),
			 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, name, 0, &dbi), 0);
	if (v)
		ck_assert_int_eq(mdb_put(txn, dbi, &key, &val, 0), 0);
	else
		ck_assert_int_eq(mdb_del(txn, dbi, &key, NULL), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* A meta value: version 1, then @x little-endian. */
static void meta_u64(const char *key, uint64_t x)
{
	uint8_t v[10] = { 1, 0 };

	memcpy(v + 2, &x, 8);
	lmdb_put("meta", key, strlen(key), v, sizeof v);
}

START_TEST(test_lmdb_format_and_counters)
{
	mqlog *db = make_db(1, 3);
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	uint8_t shortv[3] = { 1, 0, 7 };

	mqlog_close(db);
	/* A newer layout is refused, by name. */
	meta_u64("format_version", 2);
	ck_assert_int_eq(mqlog_open(dir, NULL, &db), MQLOG_EVERSION);
	h_msg_has("format 2 is newer");
	lmdb_put("meta", "format_version", 14, shortv, sizeof shortv);
	ck_assert_int_eq(mqlog_open(dir, NULL, &db), MQLOG_ECORRUPT);
	h_msg_has("bad format_version value");
	meta_u64("format_version", 1);

	/* The topic id counter: damaged, zero, exhausted. */
	lmdb_put("meta", "next_topic_id", 13, shortv, sizeof shortv);
	db = h_open(dir);
	ck_assert_int_eq(mqlog_topic_create(db, "u", &c), MQLOG_ECORRUPT);
	h_msg_has("bad next_topic_id value");
	mqlog_close(db);
	meta_u64("next_topic_id", 0);
	db = h_open(dir);
	ck_assert_int_eq(mqlog_topic_create(db, "u", &c), MQLOG_ECORRUPT);
	h_msg_has("next_topic_id is 0");
	mqlog_close(db);
	meta_u64("next_topic_id", (uint64_t)UINT32_MAX + 1);
	db = h_open(dir);
	ck_assert_int_eq(mqlog_topic_create(db, "u", &c), MQLOG_ERANGE);
	h_msg_has("topic ids exhausted");
	/* None of it touched the topic that was there. */
	mqlog_topic *t = h_topic(db, "t");
	ck_assert_uint_eq(h_info(t, 0).end_offset, 3);
	ck_assert_int_eq(mqlog_topic_open(db, "u", &t), MQLOG_ENOENT);
	mqlog_close(db);
	meta_u64("next_topic_id", 9);
	db = h_open(dir);
	h_create(db, "u", &c);
	mqlog_close(db);
}
END_TEST

/* Key prefix of group @g on topic id @tid (name, NUL, big-endian id). */
static size_t gkey(uint8_t *k, const char *g, uint32_t tid)
{
	size_t n = strlen(g);

	memcpy(k, g, n + 1);
	k[n + 1] = (uint8_t)(tid >> 24);
	k[n + 2] = (uint8_t)(tid >> 16);
	k[n + 3] = (uint8_t)(tid >> 8);
	k[n + 4] = (uint8_t)tid;
	return n + 5;
}

START_TEST(test_lmdb_bad_group_records)
{
	mqlog *db = make_db(2, 3);
	mqlog_topic *t = h_topic(db, "t");
	mqlog_consumer_options o = member_opts("g");
	mqlog_consumer *c = NULL;
	mqlog_group_info *gi = NULL;
	uint8_t k[64], v[4] = { 1, 0, 0, 0 };
	size_t n;
	static const char *const why[] = { "bad key", "bad group state",
					   "bad member", "bad entry" };

	ck_assert_int_eq(mqlog_consumer_open(t, &o, &c), 0);
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
	for (int i = 0; i < 4; i++) {
		n = gkey(k, "g", 1);
		switch (i) {
		case 0: /* a member key of the wrong length */
			memset(k + n, 0, 3);
			lmdb_put("group_members", k, n + 3, v, sizeof v);
			break;
		case 1: /* the group state, cut short */
			memset(k + n, 0, 8);
			lmdb_put("group_members", k, n + 8, v, sizeof v);
			break;
		case 2: /* a member record, cut short */
			memset(k + n, 0, 8);
			k[n + 7] = 5;
			lmdb_put("group_members", k, n + 8, v, sizeof v);
			break;
		case 3: /* a partition record, cut short */
			memset(k + n, 0, 4);
			lmdb_put("group_offsets", k, n + 4, v, sizeof v);
			break;
		}
		db = h_open(dir);
		ck_assert_int_eq(mqlog_group_describe(db, "g", "t", &gi),
				 MQLOG_ECORRUPT);
		h_msg_has(why[i]);
		h_msg_has("data.mdb");
		/* A member cannot join a group it cannot read. */
		t = h_topic(db, "t");
		c = NULL;
		ck_assert_int_eq(mqlog_consumer_open(t, &o, &c),
				 MQLOG_ECORRUPT);
		ck_assert_ptr_null(c);
		mqlog_topic_close(t);
		mqlog_close(db);
		lmdb_put(i == 3 ? "group_offsets" : "group_members", k,
			 i == 0 ? n + 3 : n + (i == 3 ? 4 : 8), NULL, 0);
		if (i == 1) {
			/* Put back a valid state: a fresh join writes one. */
			db = h_open(dir);
			t = h_topic(db, "t");
			ck_assert_int_eq(mqlog_consumer_open(t, &o, &c), 0);
			mqlog_consumer_close(c);
			mqlog_topic_close(t);
			mqlog_close(db);
		}
	}
	/* Keys the engine did not write are ignored by the listing. */
	lmdb_put("group_offsets", "x", 1, v, sizeof v);
	db = h_open(dir);
	mqlog_group_info *gl = NULL;
	ck_assert_int_eq(mqlog_group_list(db, &gl, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(gl[0].group, "g");
	mqlog_group_info_free(gl, n);
	mqlog_close(db);
}
END_TEST

/* ======================================================================== */
/* Committed offsets past the log end                                       */
/* ======================================================================== */

/*
 * What a power cut can leave: a durable commit past the end of a log whose
 * unsynced tail was lost.  Recovery sets it back to the end (reported by
 * mqlog_recover), so that a member resumes at the records appended next.
 */
START_TEST(test_commit_past_end_clamped)
{
	mqlog *db = make_db(2, 10);
	mqlog_topic *t = h_topic(db, "t");
	mqlog_consumer_options o = member_opts("g");
	mqlog_consumer *c = NULL;
	mqlog_partition_offset po[2] = { { 0, 10 }, { 1, 4 } };
	mqlog_group_info *gi = NULL;
	mqlog_recover_stats st;
	struct h_batch b[16];
	mqlog_record recs[16];
	size_t n;

	ck_assert_int_eq(mqlog_consumer_open(t, &o, &c), 0);
	ck_assert_int_eq(mqlog_consumer_commit_offsets(c, po, 2), 0);
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);

	/* The cut: partition 0 keeps its first 6 records only. */
	const char *seg = h_seg_path(dir, "t", 0, 0);
	ck_assert_uint_eq(h_walk(seg, b, 16, NULL), 10);
	ck_assert_int_eq(fx_truncate(seg, b[6].pos), 0);

	db = h_open(dir);
	memset(&st, 0xff, sizeof st);
	ck_assert_int_eq(mqlog_recover(db, "t", &st), 0);
	ck_assert_uint_eq(st.partitions, 2);
	ck_assert_uint_eq(st.offsets_clamped, 1);
	ck_assert_int_eq(mqlog_group_describe(db, "g", "t", &gi), 0);
	ck_assert_uint_eq(gi->partitions[0].end_offset, 6);
	ck_assert_uint_eq(gi->partitions[0].committed, 6);
	ck_assert_uint_eq(gi->partitions[1].committed, 4);
	mqlog_group_info_free(gi, 1);
	/* Once is enough. */
	ck_assert_int_eq(mqlog_recover(db, "t", &st), 0);
	ck_assert_uint_eq(st.offsets_clamped, 0);

	/* New records take offsets 6..11; the member starts at 6. */
	t = h_topic(db, "t");
	for (int i = 0; i < 6; i++)
		h_append1(t, 0, "new");
	ck_assert_int_eq(mqlog_consumer_open(t, &o, &c), 0);
	uint64_t next = 6;
	for (int i = 0; i < 100 && next < 12; i++) {
		ck_assert_int_eq(mqlog_consumer_poll(c, recs, 16, 20, &n), 0);
		for (size_t k = 0; k < n; k++) {
			if (recs[k].partition != 0)
				continue;
			ck_assert_uint_eq(recs[k].offset, next);
			ck_assert_uint_eq(recs[k].value.len, 3);
			next++;
		}
	}
	ck_assert_uint_eq(next, 12);
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* The same when the open itself recovers (no mqlog_recover call). */
START_TEST(test_commit_past_end_clamped_at_open)
{
	mqlog *db = make_db(1, 8);
	mqlog_topic *t = h_topic(db, "t");
	mqlog_consumer_options o = member_opts("g");
	mqlog_consumer *c = NULL;
	mqlog_partition_offset po = { 0, 8 };
	mqlog_group_info *gi = NULL;
	uint64_t off = 0;

	ck_assert_int_eq(mqlog_consumer_open(t, &o, &c), 0);
	ck_assert_int_eq(mqlog_consumer_commit_offsets(c, &po, 1), 0);
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
	/* Every segment file gone: the partition restarts empty at 0. */
	ck_assert_int_eq(unlink(h_seg_path(dir, "t", 0, 0)), 0);
	db = h_open(dir);
	t = h_topic(db, "t");
	ck_assert_uint_eq(h_info(t, 0).end_offset, 0);
	ck_assert_int_eq(mqlog_group_describe(db, "g", "t", &gi), 0);
	ck_assert_uint_eq(gi->partitions[0].committed, 0);
	mqlog_group_info_free(gi, 1);
	h_append1(t, 0, "a");
	ck_assert_int_eq(mqlog_consumer_open(t, &o, &c), 0);
	ck_assert_int_eq(mqlog_consumer_committed(c, 0, &off), 0);
	ck_assert_uint_eq(off, 0);
	ck_assert_int_eq(mqlog_consumer_position(c, 0, &off), 0);
	ck_assert_uint_eq(off, 0);
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ======================================================================== */
/* Readers                                                                  */
/* ======================================================================== */

START_TEST(test_reader_args)
{
	mqlog *db = make_db(1, 2);
	mqlog_topic *t = h_topic(db, "t");
	mqlog_reader *r = NULL;
	mqlog_record rec, recs[2];
	size_t n = 5;

	ck_assert_int_eq(mqlog_reader_open(NULL, 0, &r), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_reader_open(t, 0, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_reader_open(t, 1, &r), MQLOG_EINVAL);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(mqlog_reader_seek(NULL, 0), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_reader_seek_time(NULL, 0), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_reader_next(NULL, &rec), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_reader_read(NULL, recs, 2, &n), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_reader_wait(NULL, 0), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	ck_assert_int_eq(mqlog_reader_next(r, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_reader_read(r, NULL, 2, &n), MQLOG_EINVAL);
	/* Room for none: nothing read, the position stays. */
	ck_assert_int_eq(mqlog_reader_read(r, recs, 0, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 0);
	ck_assert_int_eq(mqlog_reader_read(r, recs, 2, &n), 0);
	ck_assert_uint_eq(n, 2);
	/* Caught up: waiting times out, then an append wakes it. */
	double t0 = h_mono_ms();
	ck_assert_int_eq(mqlog_reader_wait(r, 30), MQLOG_ETIMEDOUT);
	ck_assert_double_ge(h_mono_ms() - t0, 25);
	h_append1(t, 0, "x");
	ck_assert_int_eq(mqlog_reader_wait(r, 1000), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 2);
	/* Time seeks past every record land at the end. */
	ck_assert_int_eq(mqlog_reader_seek_time(r, INT64_MAX), 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 3);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ======================================================================== */
/* Paths and the environment                                                */
/* ======================================================================== */

START_TEST(test_open_paths)
{
	mqlog_options o;
	mqlog *db = NULL;
	char cwd[4096], *longp;

	mqlog_options_init(&o);
	o.flags = MQLOG_OPEN_CREATE;
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
	ck_assert_int_eq(chdir(dir), 0);
	/* Relative names, with and without a parent, trailing slashes. */
	ck_assert_int_eq(mqlog_open("solo", &o, &db), 0);
	mqlog_close(db);
	ck_assert_int_eq(mkdir("sub", 0755), 0);
	ck_assert_int_eq(mqlog_open("sub/db//", &o, &db), 0);
	mqlog_close(db);
	ck_assert_int_eq(mqlog_open("sub/db", NULL, &db), 0);
	mqlog_close(db);
	ck_assert(h_exists(fx_path("%s/sub/db/meta/data.mdb", dir)));
	ck_assert(h_exists(fx_path("%s/solo/topics", dir)));
	ck_assert_int_eq(chdir(cwd), 0);

	longp = malloc(3801);
	ck_assert_ptr_nonnull(longp);
	memset(longp, 'a', 3800);
	longp[3800] = 0;
	longp[0] = '/';
	db = NULL;
	ck_assert_int_eq(mqlog_open(longp, &o, &db), MQLOG_EINVAL);
	h_msg_has("path too long");
	ck_assert_ptr_null(db);
	free(longp);
	ck_assert_int_eq(mqlog_sync(NULL), MQLOG_EINVAL);
}
END_TEST

/* An unknown MQLOG_CRASH_POINT name arms nothing: appends go on. */
START_TEST(test_crash_env_unknown_point)
{
	mqlog *db;
	mqlog_topic *t;

	ck_assert_int_eq(setenv("MQLOG_CRASH_POINT", "no.such.point:2", 1), 0);
	db = make_db(1, 0);
	t = h_topic(db, "t");
	for (int i = 0; i < 5; i++)
		h_append1(t, 0, "v");
	ck_assert_uint_eq(h_info(t, 0).end_offset, 5);
	mqlog_topic_close(t);
	mqlog_close(db);
	unsetenv("MQLOG_CRASH_POINT");
}
END_TEST

/* A known one kills the process at its Nth hit, and nothing is lost. */
START_TEST(test_crash_env_point)
{
	mqlog *db = make_db(1, 0);
	int status;
	pid_t pid;

	mqlog_close(db);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setenv("MQLOG_CRASH_POINT", "append.after_publish:3", 1);
		db = NULL;
		mqlog_topic *t = NULL;
		if (mqlog_open(dir, NULL, &db) || mqlog_topic_open(db, "t", &t))
			_exit(3);
		for (int i = 0; i < 10; i++) {
			mqlog_msg m = h_msg("v", 0);
			if (mqlog_append(t, 0, &m, 1, MQLOG_SYNC_ALWAYS, NULL))
				_exit(4);
		}
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	ck_assert_int_eq(WTERMSIG(status), SIGKILL);
	db = h_open(dir);
	mqlog_topic *t = h_topic(db, "t");
	/* Two acknowledged, the third published when the point fired. */
	ck_assert_uint_eq(h_info(t, 0).end_offset, 3);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ======================================================================== */
/* Topic configuration, adoption from topic.conf, administrative calls     */
/* ======================================================================== */

START_TEST(test_topic_config_checks)
{
	mqlog *db = h_open(dir);
	static const struct {
		int what;
		const char *needle;
	} cases[] = {
		{ 0, "partitions 0" },		{ 1, "segment_bytes 100" },
		{ 2, "sync policy 7" },		{ 3, "sync_interval_ms 0" },
		{ 4, "retention_ms 0" },	{ 5, "retention_ms -2" },
		{ 6, "retention_bytes 0" },	{ 7, "max_messages 0" },
		{ 8, "full policy 9" },		{ 9, "max_record_bytes 10" },
		{ 10, "index_interval_bytes" },
	};
	char **names = NULL;
	size_t n = 9;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mqlog_topic_config c;
		mqlog_topic_config_init(&c);
		switch (cases[i].what) {
		case 0:
			c.partitions = 0;
			break;
		case 1:
			c.segment_bytes = 100;
			break;
		case 2:
			c.sync = 7;
			break;
		case 3:
			c.sync_interval_ms = 0;
			break;
		case 4:
			c.retention_ms = 0;
			break;
		case 5:
			c.retention_ms = -2;
			break;
		case 6:
			c.retention_bytes = 0;
			break;
		case 7:
			c.max_messages = 0;
			break;
		case 8:
			c.full_policy = 9;
			break;
		case 9:
			c.max_record_bytes = 10;
			break;
		case 10:
			c.index_interval_bytes = 0;
			break;
		}
		ck_assert_int_eq(mqlog_topic_create(db, "t", &c), MQLOG_EINVAL);
		h_msg_has(cases[i].needle);
	}
	ck_assert_int_eq(mqlog_topic_list(db, &names, &n), 0);
	ck_assert_uint_eq(n, 0);
	mqlog_list_free(names, n);
	ck_assert(!h_exists(fx_path("%s/topics/t", dir)));

	/* NULL arguments. */
	mqlog_topic *t = NULL;
	mqlog_partition_info info;
	mqlog_msg m = h_msg("v", 0);
	ck_assert_int_eq(mqlog_topic_create(NULL, "t", NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_topic_create(db, NULL, NULL), MQLOG_EINVAL);
	h_msg_has("topic name is NULL");
	ck_assert_int_eq(mqlog_topic_delete(NULL, "t"), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_topic_list(NULL, &names, &n), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_topic_list(db, NULL, &n), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_topic_open(NULL, "t", &t), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_topic_open(db, "t", NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_append(NULL, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_topic_sync(NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_partition_stat(NULL, 0, &info), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_partition_release(NULL, 0, 0), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_maintain(NULL, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_verify(NULL, NULL, NULL, NULL, NULL),
			 MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_recover(NULL, NULL, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_scan_file(NULL, NULL, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_scan_partition(NULL, 0, NULL, NULL),
			 MQLOG_EINVAL);
	mqlog_close(db);
}
END_TEST

/*
 * meta/ lost: topics are adopted from their topic.conf, unless it is gone
 * or damaged; such a topic stays on disk, unseen, and its name cannot be
 * taken by a new topic.  Directories that are not topics are ignored.
 */
START_TEST(test_adopt_from_topic_conf)
{
	mqlog *db = h_open(dir);
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_ALWAYS);
	static const char *const names[] = { "good", "cut", "flipped", "none" };
	mqlog_topic *t = NULL;
	char **list = NULL;
	size_t n;

	for (size_t i = 0; i < 4; i++) {
		h_create(db, names[i], &c);
		t = h_topic(db, names[i]);
		h_append1(t, 0, names[i]);
		mqlog_topic_close(t);
	}
	mqlog_close(db);
	fx_rmtree(fx_path("%s/meta", dir));
	ck_assert_int_eq(
		fx_truncate(fx_path("%s/topics/cut/topic.conf", dir), 10), 0);
	ck_assert_int_eq(
		fx_flip_bit(fx_path("%s/topics/flipped/topic.conf", dir), 20,
			    3),
		0);
	ck_assert_int_eq(unlink(fx_path("%s/topics/none/topic.conf", dir)), 0);
	ck_assert_int_eq(mkdir(fx_path("%s/topics/not a topic", dir), 0755), 0);

	db = h_open(dir);
	ck_assert_int_eq(mqlog_topic_list(db, &list, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(list[0], "good");
	mqlog_list_free(list, n);
	t = h_topic(db, "good");
	ck_assert_uint_eq(h_info(t, 0).end_offset, 1);
	mqlog_topic_close(t);
	for (size_t i = 1; i < 4; i++) {
		ck_assert_int_eq(mqlog_topic_open(db, names[i], &t),
				 MQLOG_ENOENT);
		ck_assert_int_eq(mqlog_topic_create(db, names[i], &c),
				 MQLOG_EEXIST);
		h_msg_has("exists on disk");
		ck_assert(h_exists(h_seg_path(dir, names[i], 0, 0)));
	}
	ck_assert(h_exists(fx_path("%s/topics/not a topic", dir)));
	mqlog_close(db);
}
END_TEST

START_TEST(test_readonly_admin_calls)
{
	mqlog *db = make_db(1, 4);
	mqlog_options ro;
	mqlog_topic *t;
	mqlog_recover_stats st;

	mqlog_close(db);
	mqlog_options_init(&ro);
	ro.flags = MQLOG_OPEN_RDONLY;
	ck_assert_int_eq(mqlog_open(dir, &ro, &db), 0);
	t = h_topic(db, "t");
	ck_assert_int_eq(mqlog_partition_release(t, 0, 2), MQLOG_ERDONLY);
	h_msg_has("read-only");
	ck_assert_int_eq(mqlog_recover(db, NULL, &st), MQLOG_ERDONLY);
	h_msg_has("read-only");
	/* Retention on a read-only handle is nothing to do. */
	ck_assert_int_eq(mqlog_maintain(db, NULL), 0);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	ck_assert_uint_eq(h_info(t, 0).start_offset, 0);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 4);
	/* No writer can wake a read-only reader: waiting just times out. */
	mqlog_reader *r = NULL;
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	ck_assert_int_eq(mqlog_reader_seek(r, 4), 0);
	double t0 = h_mono_ms();
	ck_assert_int_eq(mqlog_reader_wait(r, 30), MQLOG_ETIMEDOUT);
	ck_assert_double_ge(h_mono_ms() - t0, 25);
	ck_assert_int_eq(mqlog_reader_seek(r, 3), 0);
	ck_assert_int_eq(mqlog_reader_wait(r, 30), 0);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* An append with sync INTERVAL on a sync NONE topic is synced by the
 * background flusher within the interval; mqlog_sync skips partitions
 * never opened. */
START_TEST(test_interval_append_on_none_topic)
{
	mqlog *db = h_open(dir);
	mqlog_topic_config c = h_cfg(2, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_msg m = h_msg("v", 0);
	mqlog_topic *t;

	c.sync_interval_ms = 20;
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_NONE, NULL), 0);
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_INTERVAL, NULL),
			 0);
	double t0 = h_mono_ms();
	while (h_info(t, 0).durable_offset < 2 && h_mono_ms() - t0 < 5000)
		h_sleep_ms(5);
	ck_assert_uint_eq(h_info(t, 0).durable_offset, 2);
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_NONE, NULL), 0);
	ck_assert_int_eq(mqlog_sync(db), 0);
	ck_assert_uint_eq(h_info(t, 0).durable_offset, 3);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* REJECT by bytes: a batch over the limit fails, nothing is written. */
START_TEST(test_reject_by_bytes)
{
	mqlog *db = h_open(dir);
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	char big[3000];
	mqlog_msg m;
	mqlog_topic *t;
	int rc = 0, i;

	c.retention_bytes = 8192;
	c.full_policy = MQLOG_FULL_REJECT;
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	memset(big, 'b', sizeof big);
	m = h_msg("", 0);
	m.value.data = big;
	m.value.len = sizeof big;
	for (i = 0; i < 10 && rc == 0; i++)
		rc = mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL);
	ck_assert_int_eq(rc, MQLOG_EFULL);
	h_msg_has("retention-bytes 8192");
	ck_assert_uint_eq(h_info(t, 0).end_offset, (uint64_t)i - 1);
	ck_assert_uint_le(h_info(t, 0).bytes, 8192);
	/* A batch that can never fit says so. */
	char huge[9000];
	memset(huge, 'h', sizeof huge);
	m.value.data = huge;
	m.value.len = sizeof huge;
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL),
			 MQLOG_EFULL);
	h_msg_has("can never fit");
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ======================================================================== */
/* Segment files: gaps, foreign names, growth past the mapping, scans      */
/* ======================================================================== */

/* Append 200-byte values to t/0 until it has at least @segs segments. */
static uint64_t fill_segments(mqlog_topic *t, size_t segs)
{
	char v[201];
	uint64_t bases[16];

	memset(v, 'x', 200);
	v[200] = 0;
	while (h_seg_list(dir, "t", 0, bases, 16) < segs)
		h_append1(t, 0, v);
	return h_info(t, 0).end_offset;
}

static void count_problem(void *arg, const char *topic, uint32_t partition,
			  const char *file, uint64_t position, const char *what)
{
	(void)topic;
	(void)partition;
	(void)file;
	(void)position;
	(void)what;
	(*(int *)arg)++;
}

/* A sealed segment file lost from the middle: readers stop in front of
 * the gap with an error naming it, verify reports it, the rest is read
 * by seeking past it. */
START_TEST(test_segment_gap_reported)
{
	mqlog *db = h_open(dir);
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	uint64_t bases[16], end;
	mqlog_reader *r = NULL;
	mqlog_record rec;
	int problems = 0, rc;
	uint64_t got = 0;

	h_create(db, "t", &c);
	mqlog_topic *t = h_topic(db, "t");
	end = fill_segments(t, 4);
	mqlog_topic_close(t);
	mqlog_close(db);
	ck_assert_uint_ge(h_seg_list(dir, "t", 0, bases, 16), 4);
	ck_assert_int_eq(unlink(h_seg_path(dir, "t", 0, bases[1])), 0);

	db = h_open(dir);
	t = h_topic(db, "t");
	ck_assert_uint_eq(h_info(t, 0).end_offset, end);
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	while ((rc = mqlog_reader_next(r, &rec)) == 1)
		ck_assert_uint_eq(rec.offset, got++);
	ck_assert_int_eq(rc, MQLOG_ECORRUPT);
	h_msg_has("next segment starts at");
	ck_assert_uint_eq(got, bases[1]);
	/* Past the gap everything reads. */
	ck_assert_int_eq(mqlog_reader_seek(r, bases[2]), 0);
	for (got = bases[2]; (rc = mqlog_reader_next(r, &rec)) == 1; got++)
		ck_assert_uint_eq(rec.offset, got);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(got, end);
	mqlog_reader_close(r);
	ck_assert_int_eq(mqlog_verify(db, "t", count_problem, &problems, NULL),
			 MQLOG_ECORRUPT);
	ck_assert_int_ge(problems, 1);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Files in a partition directory that are not segments are left alone. */
START_TEST(test_foreign_segment_names)
{
	mqlog *db = make_db(1, 5);
	static const char *const foreign[] = {
		"99999999999999999999.seg", /* past 2^64 */
		"00000000000000000000.seg.bak",
		"0000000000000000000x.seg",
	};
	uint8_t junk[100];

	mqlog_close(db);
	memset(junk, 0x5a, sizeof junk);
	for (size_t i = 0; i < 3; i++) {
		FILE *f = fopen(fx_path("%s/topics/t/0/%s", dir, foreign[i]),
				"wb");
		ck_assert_ptr_nonnull(f);
		ck_assert_uint_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
		ck_assert_int_eq(fclose(f), 0);
	}
	db = h_open(dir);
	mqlog_topic *t = h_topic(db, "t");
	ck_assert_uint_eq(h_info(t, 0).end_offset, 5);
	ck_assert_uint_eq(h_info(t, 0).segments, 1);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	h_append1(t, 0, "six");
	ck_assert_uint_eq(h_info(t, 0).end_offset, 6);
	mqlog_topic_close(t);
	mqlog_close(db);
	for (size_t i = 0; i < 3; i++)
		ck_assert(
			h_exists(fx_path("%s/topics/t/0/%s", dir, foreign[i])));
}
END_TEST

/* A record larger than the segment size: the active segment outgrows a
 * reader's mapping, which follows it. */
START_TEST(test_reader_follows_big_record)
{
	mqlog *db = h_open(dir);
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	mqlog_reader *r = NULL;
	mqlog_record rec;
	static char big[20000];

	h_create(db, "t", &c);
	mqlog_topic *t = h_topic(db, "t");
	h_append1(t, 0, "small");
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	memset(big, 'B', sizeof big - 1);
	h_append1(t, 0, big);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 1);
	ck_assert_uint_eq(rec.value.len, sizeof big - 1);
	ck_assert_int_eq(memcmp(rec.value.data, big, sizeof big - 1), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 0);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

struct stop_at {
	unsigned batches, records, stop_batch;
};

static int on_batch_stop(void *arg, const mqlog_batch_info *b)
{
	struct stop_at *s = arg;

	(void)b;
	return ++s->batches == s->stop_batch ? 42 : 0;
}

static int on_record_count(void *arg, const mqlog_batch_info *b,
			   const mqlog_record *rec)
{
	(void)b;
	(void)rec;
	((struct stop_at *)arg)->records++;
	return 0;
}

/* A scan callback's non-zero result stops the scan and is returned. */
START_TEST(test_scan_callback_stops)
{
	mqlog *db = make_db(1, 6);
	mqlog_scan_ops ops = { on_batch_stop, on_record_count };
	struct stop_at s = { 0, 0, 3 };

	mqlog_close(db);
	ck_assert_int_eq(mqlog_scan_file(h_seg_path(dir, "t", 0, 0), &ops, &s),
			 42);
	ck_assert_uint_eq(s.batches, 3);
	ck_assert_uint_eq(s.records, 2);
	s = (struct stop_at){ 0, 0, 100 };
	ck_assert_int_eq(mqlog_scan_file(h_seg_path(dir, "t", 0, 0), &ops, &s),
			 0);
	ck_assert_uint_eq(s.batches, 6);
	ck_assert_uint_eq(s.records, 6);
	ck_assert_int_eq(mqlog_scan_file(fx_path("%s/none.seg", dir), &ops, &s),
			 -ENOENT);
}
END_TEST

/* ======================================================================== */
/* Consumers: reassigning, records removed before they were read           */
/* ======================================================================== */

START_TEST(test_consumer_reassign_keeps_positions)
{
	mqlog *db = make_db(3, 4);
	mqlog_topic *t = h_topic(db, "t");
	mqlog_consumer *c = NULL;
	uint32_t all[3] = { 0, 1, 2 }, one = 1, got[3];
	mqlog_record recs[16];
	size_t n;
	uint64_t off;

	ck_assert_int_eq(mqlog_consumer_open(t, NULL, &c), 0);
	ck_assert_int_eq(mqlog_consumer_assign(c, all, 3), 0);
	ck_assert_int_eq(mqlog_consumer_seek(c, 1, 2), 0);
	ck_assert_int_eq(mqlog_consumer_assign(c, &one, 1), 0);
	ck_assert_int_eq(mqlog_consumer_assignment(c, got, 3, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(got[0], 1);
	/* Kept partitions keep their positions; dropped ones are gone. */
	ck_assert_int_eq(mqlog_consumer_position(c, 1, &off), 0);
	ck_assert_uint_eq(off, 2);
	ck_assert_int_eq(mqlog_consumer_position(c, 0, &off), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_consumer_poll(c, recs, 16, 0, &n), 0);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(recs[i].partition, 1);
		ck_assert_uint_eq(recs[i].offset, 2 + i);
	}
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Retention removed records the consumer had not read: it goes on at the
 * new start (and says nothing: the records are gone by policy). */
START_TEST(test_consumer_continues_after_release)
{
	mqlog *db = h_open(dir);
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	mqlog_consumer *k = NULL;
	mqlog_record recs[64];
	size_t n;
	uint64_t end, start;

	h_create(db, "t", &c);
	mqlog_topic *t = h_topic(db, "t");
	end = fill_segments(t, 3);
	ck_assert_int_eq(mqlog_consumer_open(t, NULL, &k), 0);
	uint32_t zero = 0;
	ck_assert_int_eq(mqlog_consumer_assign(k, &zero, 1), 0);
	ck_assert_int_eq(mqlog_partition_release(t, 0, end - 2), 0);
	start = h_info(t, 0).start_offset;
	ck_assert_uint_gt(start, 0);
	ck_assert_uint_le(start, end - 2);
	ck_assert_int_eq(mqlog_consumer_poll(k, recs, 64, 0, &n), 0);
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_eq(recs[0].offset, start);
	for (size_t i = 1; i < n; i++)
		ck_assert_uint_eq(recs[i].offset, recs[i - 1].offset + 1);
	mqlog_consumer_close(k);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ======================================================================== */
/* Damaged index entries: verify reports each, recover rebuilds            */
/* ======================================================================== */

static void put_off_entry(uint64_t offset, uint64_t seg, uint64_t pos)
{
	uint8_t k[16], v[18] = { 1, 0 };

	memset(k, 0, sizeof k);
	k[3] = 1; /* topic id 1, partition 0 */
	for (int i = 0; i < 8; i++)
		k[8 + i] = (uint8_t)(offset >> (56 - 8 * i));
	memcpy(v + 2, &seg, 8);
	memcpy(v + 10, &pos, 8);
	lmdb_put("offset_index", k, sizeof k, v, sizeof v);
}

static void put_time_entry(int64_t ts, uint64_t offset, uint64_t seg,
			   uint64_t pos)
{
	uint8_t k[24], v[18] = { 1, 0 };
	uint64_t b = (uint64_t)ts ^ (UINT64_C(1) << 63);

	memset(k, 0, sizeof k);
	k[3] = 1;
	for (int i = 0; i < 8; i++) {
		k[8 + i] = (uint8_t)(b >> (56 - 8 * i));
		k[16 + i] = (uint8_t)(offset >> (56 - 8 * i));
	}
	memcpy(v + 2, &seg, 8);
	memcpy(v + 10, &pos, 8);
	lmdb_put("time_index", k, sizeof k, v, sizeof v);
}

struct problems {
	int n;
	char text[2048];
};

static void note_problem(void *arg, const char *topic, uint32_t partition,
			 const char *file, uint64_t position, const char *what)
{
	struct problems *p = arg;
	size_t l = strlen(p->text);

	(void)topic;
	(void)partition;
	(void)file;
	(void)position;
	p->n++;
	snprintf(p->text + l, sizeof p->text - l, "%s\n", what);
}

START_TEST(test_index_damage_verify_and_recover)
{
	mqlog *db = h_open(dir);
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_ALWAYS);
	struct problems pr = { 0, "" };
	mqlog_recover_stats st;
	static const char *const vals[] = { "a", "b" };
	mqlog_topic *t;

	c.index_interval_bytes = 1; /* an entry for every batch */
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	for (int i = 0; i < 6; i++) {
		mqlog_msg m[2] = { h_msg(vals[0], 1000 + 10 * i),
				   h_msg(vals[1], 1000 + 10 * i + 5) };
		ck_assert_int_eq(
			mqlog_append(t, 0, m, 2, MQLOG_SYNC_DEFAULT, NULL), 0);
	}
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);

	put_off_entry(2, 0, 12345);    /* batch 2 is elsewhere */
	put_off_entry(3, 0, 0);	       /* offset 3 starts no batch */
	put_time_entry(1011, 4, 7, 0); /* wrong segment */

	db = h_open(dir);
	ck_assert_int_eq(mqlog_verify(db, "t", note_problem, &pr, NULL),
			 MQLOG_ECORRUPT);
	ck_assert_msg(h_contains(pr.text, "says segment 0 byte 12345") &&
			      h_contains(pr.text,
					 "offset index entry 3 (segment 0, "
					 "byte 0) points at no batch") &&
			      h_contains(pr.text, "time index entry for offset "
						  "4 has the wrong position"),
		      "problems: %s", pr.text);
	/* Records are read from the log, exactly, damage or not. */
	t = h_topic(db, "t");
	struct h_recs rs = { 0 };
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, 12);
	h_recs_free(&rs);
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_recover(db, "t", &st), 0);
	ck_assert_uint_ge(st.index_entries, 6);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);

	/* A time entry that understates what came before it would make
	 * time lookups land late. */
	put_time_entry(1, 6, 0, 0);
	pr.n = 0;
	pr.text[0] = 0;
	db = h_open(dir);
	ck_assert_int_eq(mqlog_verify(db, "t", note_problem, &pr, NULL),
			 MQLOG_ECORRUPT);
	ck_assert_msg(h_contains(pr.text, "claims max timestamp 1, log has"),
		      "problems: %s", pr.text);
	ck_assert_int_eq(mqlog_recover(db, "t", &st), 0);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);
}
END_TEST

/* A standalone consumer of a read-only directory: no writer can wake it,
 * so a poll at the end sleeps out its timeout and returns nothing. */
START_TEST(test_readonly_consumer_poll_times_out)
{
	mqlog *db = make_db(2, 3);
	mqlog_options ro;
	mqlog_consumer *c = NULL;
	mqlog_record recs[8];
	uint32_t parts[2] = { 0, 1 };
	size_t n = 0, total = 0;

	mqlog_close(db);
	mqlog_options_init(&ro);
	ro.flags = MQLOG_OPEN_RDONLY;
	ck_assert_int_eq(mqlog_open(dir, &ro, &db), 0);
	mqlog_topic *t = h_topic(db, "t");
	ck_assert_int_eq(mqlog_consumer_open(t, NULL, &c), 0);
	ck_assert_int_eq(mqlog_consumer_assign(c, parts, 2), 0);
	while (mqlog_consumer_poll(c, recs, 8, 0, &n) == 0 && n)
		total += n;
	ck_assert_uint_eq(total, 6);
	double t0 = h_mono_ms();
	ck_assert_int_eq(mqlog_consumer_poll(c, recs, 8, 40, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_double_ge(h_mono_ms() - t0, 35);
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

struct late_append {
	mqlog_topic *t;
	uint32_t part;
};

static void *append_later(void *arg)
{
	struct late_append *a = arg;

	h_sleep_ms(60);
	h_append1(a->t, a->part, "late");
	return NULL;
}

/* More partitions than one futex_waitv takes (127): the consumer waits
 * on them in turns and still wakes for an append to the last one. */
START_TEST(test_consumer_waits_on_many_partitions)
{
	mqlog *db = h_open(dir);
	mqlog_topic_config c = h_cfg(130, 4096, MQLOG_SYNC_NONE);
	mqlog_consumer *k = NULL;
	uint32_t parts[130];
	mqlog_record rec;
	size_t n = 0;
	pthread_t th;

	h_create(db, "t", &c);
	mqlog_topic *t = h_topic(db, "t");
	for (uint32_t p = 0; p < 130; p++)
		parts[p] = p;
	ck_assert_int_eq(mqlog_consumer_open(t, NULL, &k), 0);
	ck_assert_int_eq(mqlog_consumer_assign(k, parts, 130), 0);
	ck_assert_int_eq(mqlog_consumer_poll(k, &rec, 1, 0, &n), 0);
	ck_assert_uint_eq(n, 0);
	struct late_append a = { t, 129 };
	ck_assert_int_eq(pthread_create(&th, NULL, append_later, &a), 0);
	double t0 = h_mono_ms();
	ck_assert_int_eq(mqlog_consumer_poll(k, &rec, 1, 5000, &n), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(rec.partition, 129);
	ck_assert_double_lt(h_mono_ms() - t0, 4000);
	mqlog_consumer_close(k);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("edges");
	TCase *tc = tcase_create("edges");
	SRunner *sr;
	int nf;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_consumer_bad_options);
	tcase_add_test(tc, test_consumer_standalone_calls);
	tcase_add_test(tc, test_group_member_calls);
	tcase_add_test(tc, test_group_list_order_and_errors);
	tcase_add_test(tc, test_lmdb_format_and_counters);
	tcase_add_test(tc, test_lmdb_bad_group_records);
	tcase_add_test(tc, test_commit_past_end_clamped);
	tcase_add_test(tc, test_commit_past_end_clamped_at_open);
	tcase_add_test(tc, test_reader_args);
	tcase_add_test(tc, test_open_paths);
	tcase_add_test(tc, test_crash_env_unknown_point);
	tcase_add_test(tc, test_crash_env_point);
	tcase_add_test(tc, test_topic_config_checks);
	tcase_add_test(tc, test_adopt_from_topic_conf);
	tcase_add_test(tc, test_readonly_admin_calls);
	tcase_add_test(tc, test_reject_by_bytes);
	tcase_add_test(tc, test_segment_gap_reported);
	tcase_add_test(tc, test_foreign_segment_names);
	tcase_add_test(tc, test_reader_follows_big_record);
	tcase_add_test(tc, test_scan_callback_stops);
	tcase_add_test(tc, test_consumer_reassign_keeps_positions);
	tcase_add_test(tc, test_consumer_continues_after_release);
	tcase_add_test(tc, test_index_damage_verify_and_recover);
	tcase_add_test(tc, test_interval_append_on_none_topic);
	tcase_add_test(tc, test_readonly_consumer_poll_times_out);
	tcase_add_test(tc, test_consumer_waits_on_many_partitions);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
