/*
 * test_interest.c - interest retention (records freed once every
 * registered consumer group committed past them), deleting groups, the
 * block policy woken by commits, and reader pins that keep a live reader's
 * segment on disk in any process.
 */
#include "helpers.h"

#include "engine.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define TOPIC "work"

static mqlog *open_db(void)
{
	mqlog *db;
	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	return db;
}

static mqlog_topic *make_topic(mqlog *db, int interest, int64_t max_messages,
			       int64_t retention_bytes, int policy)
{
	mqlog_topic_config c;
	mqlog_topic *t;

	mqlog_topic_config_init(&c);
	c.interest = interest;
	c.max_messages = max_messages;
	c.retention_bytes = retention_bytes;
	c.full_policy = policy;
	c.segment_bytes = 4096;
	c.full_block_ms = 5000;
	ck_assert_int_eq(mqlog_topic_create(db, TOPIC, &c), 0);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	return t;
}

/* Append one-record batches "v<offset>" for offsets [first, first + n). */
static int append_n(mqlog_topic *t, uint64_t first, int n)
{
	char v[32];
	for (int i = 0; i < n; i++) {
		snprintf(v, sizeof v, "v%llu", (unsigned long long)(first + i));
		mqlog_msg m = { .value = { v, strlen(v) },
				.timestamp = MQLOG_TIMESTAMP_NOW };
		int rc = mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL);
		if (rc)
			return rc;
	}
	return 0;
}

/* Read partition 0 from the start: values match offsets, offsets are
 * dense; returns the count and the first offset in *first. */
static uint64_t read_all(mqlog_topic *t, uint64_t *first)
{
	mqlog_reader *r;
	mqlog_record rec;
	uint64_t n = 0, expect = 0;
	char want[32];
	int rc;

	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	while ((rc = mqlog_reader_next(r, &rec)) == 1) {
		if (n == 0)
			*first = expect = rec.offset;
		ck_assert_uint_eq(rec.offset, expect);
		snprintf(want, sizeof want, "v%llu",
			 (unsigned long long)rec.offset);
		ck_assert_uint_eq(rec.value.len, strlen(want));
		ck_assert(memcmp(rec.value.data, want, rec.value.len) == 0);
		expect++;
		n++;
	}
	ck_assert_int_eq(rc, 0);
	mqlog_reader_close(r);
	return n;
}

static uint64_t start_of(mqlog_topic *t)
{
	return h_info(t, 0).start_offset;
}

static size_t nsegs(uint64_t *first_base)
{
	uint64_t bases[4096];
	size_t n = h_seg_list(fx_dir, TOPIC, 0, bases, 4096);
	if (first_base)
		*first_base = n ? bases[0] : UINT64_MAX;
	return n;
}

/* A member of @group with manual commits: it owns partition 0 at once. */
static mqlog_consumer *member(mqlog_topic *t, const char *group)
{
	mqlog_consumer_options o;
	mqlog_consumer *c = NULL;

	mqlog_consumer_options_init(&o);
	o.group = group;
	o.commit_mode = MQLOG_COMMIT_MANUAL;
	o.heartbeat_ms = 100;
	o.lease_ms = 2000;
	int rc = mqlog_consumer_open(t, &o, &c);
	ck_assert_msg(rc == 0, "consumer open: %s", mqlog_errmsg(NULL));
	uint32_t parts[1];
	size_t np = 0;
	ck_assert_int_eq(mqlog_consumer_assignment(c, parts, 1, &np), 0);
	ck_assert_uint_eq(np, 1);
	return c;
}

/* Commit @offset as a member that read up to there: its reader moves
 * (and with it its pin) before the commit. */
static void commit(mqlog_consumer *c, uint64_t offset)
{
	mqlog_partition_offset po = { .partition = 0, .offset = offset };
	ck_assert_int_eq(mqlog_consumer_seek(c, 0, offset), 0);
	int rc = mqlog_consumer_commit_offsets(c, &po, 1);
	ck_assert_msg(rc == 0, "commit %llu: %s", (unsigned long long)offset,
		      mqlog_errmsg(NULL));
}

/* ------------------------------------------------------------------------ */

START_TEST(test_no_group_frees_nothing)
{
	/* With interest retention and no registered group, nothing is
	 * freed by appends, rolls or maintenance. */
	mqlog *db = open_db();
	mqlog_topic *t = make_topic(db, 1, MQLOG_UNLIMITED, MQLOG_UNLIMITED,
				    MQLOG_FULL_DROP_OLDEST);
	size_t before;
	uint64_t first;

	ck_assert_int_eq(append_n(t, 0, 600), 0);
	before = nsegs(NULL);
	ck_assert_uint_gt(before, 3);
	ck_assert_int_eq(mqlog_maintain(db, TOPIC), 0);
	ck_assert_uint_eq(start_of(t), 0);
	ck_assert_uint_eq(nsegs(NULL), before);
	ck_assert_uint_eq(read_all(t, &first), 600);
	ck_assert_uint_eq(first, 0);
	mqlog_interest_info ii;
	ck_assert_int_eq(mqlog_partition_interest(t, 0, &ii), 0);
	ck_assert_uint_eq(ii.groups, 0);
	ck_assert_str_eq(ii.group, "");
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_frees_exactly_committed)
{
	/* One group: a commit moves the log start to the committed offset,
	 * exactly, and deletes the segments wholly below it; the records
	 * at and above it stay, across a reopen. */
	mqlog *db = open_db();
	mqlog_topic *t = make_topic(db, 1, MQLOG_UNLIMITED, MQLOG_UNLIMITED,
				    MQLOG_FULL_DROP_OLDEST);
	uint64_t first, base0;
	size_t before;

	ck_assert_int_eq(append_n(t, 0, 1000), 0);
	before = nsegs(NULL);
	mqlog_consumer *c = member(t, "workers");
	/* Joined, nothing committed: the group holds everything. */
	ck_assert_int_eq(mqlog_maintain(db, TOPIC), 0);
	ck_assert_uint_eq(start_of(t), 0);
	commit(c, 637);
	ck_assert_uint_eq(start_of(t), 637);
	ck_assert_uint_lt(nsegs(&base0), before);
	ck_assert_uint_le(base0, 637);
	ck_assert_uint_eq(read_all(t, &first), 1000 - 637);
	ck_assert_uint_eq(first, 637);
	mqlog_interest_info ii;
	ck_assert_int_eq(mqlog_partition_interest(t, 0, &ii), 0);
	ck_assert_uint_eq(ii.groups, 1);
	ck_assert_uint_eq(ii.floor, 637);
	ck_assert_str_eq(ii.group, "workers");
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);

	db = open_db();
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	mqlog_topic_config cfg;
	mqlog_topic_config_get(t, &cfg);
	ck_assert_int_eq(cfg.interest, 1);
	ck_assert_uint_eq(start_of(t), 637);
	ck_assert_uint_eq(read_all(t, &first), 1000 - 637);
	ck_assert_uint_eq(first, 637);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_second_group_pins)
{
	/* Two groups: the start follows the slower one; the faster one's
	 * commits free nothing beyond it. */
	mqlog *db = open_db();
	mqlog_topic *t = make_topic(db, 1, MQLOG_UNLIMITED, MQLOG_UNLIMITED,
				    MQLOG_FULL_DROP_OLDEST);
	mqlog_interest_info ii;
	uint64_t first;

	ck_assert_int_eq(append_n(t, 0, 1000), 0);
	mqlog_consumer *a = member(t, "fast");
	mqlog_consumer *b = member(t, "slow");
	commit(a, 800);
	ck_assert_uint_eq(start_of(t), 0); /* slow never committed */
	commit(b, 300);
	ck_assert_uint_eq(start_of(t), 300);
	ck_assert_int_eq(mqlog_partition_interest(t, 0, &ii), 0);
	ck_assert_uint_eq(ii.groups, 2);
	ck_assert_uint_eq(ii.floor, 300);
	ck_assert_str_eq(ii.group, "slow");
	commit(a, 900);
	ck_assert_uint_eq(start_of(t), 300);
	commit(b, 950);
	ck_assert_uint_eq(start_of(t), 900);
	ck_assert_int_eq(mqlog_partition_interest(t, 0, &ii), 0);
	ck_assert_str_eq(ii.group, "fast");
	ck_assert_uint_eq(read_all(t, &first), 100);
	ck_assert_uint_eq(first, 900);
	mqlog_consumer_close(a);
	mqlog_consumer_close(b);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_group_delete_releases)
{
	/* A group that holds the log start is refused deletion while it has
	 * a live member (nothing changes); once it is gone, deleting it
	 * frees what the remaining group committed past. */
	mqlog *db = open_db();
	mqlog_topic *t = make_topic(db, 1, MQLOG_UNLIMITED, MQLOG_UNLIMITED,
				    MQLOG_FULL_DROP_OLDEST);
	uint64_t first;

	ck_assert_int_eq(append_n(t, 0, 900), 0);
	mqlog_consumer *a = member(t, "live");
	mqlog_consumer *d = member(t, "dead");
	commit(a, 700);
	commit(d, 100);
	ck_assert_uint_eq(start_of(t), 100);
	ck_assert_int_eq(mqlog_group_delete(db, "dead", TOPIC, 0), MQLOG_EBUSY);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(NULL), "dead"));
	ck_assert_uint_eq(start_of(t), 100);
	mqlog_group_info *gi = NULL;
	ck_assert_int_eq(mqlog_group_describe(db, "dead", TOPIC, &gi), 0);
	mqlog_group_info_free(gi, 1);
	mqlog_consumer_close(d);
	ck_assert_int_eq(mqlog_group_delete(db, "dead", TOPIC, 0), 0);
	ck_assert_uint_eq(start_of(t), 700);
	ck_assert_int_eq(mqlog_group_describe(db, "dead", TOPIC, &gi),
			 MQLOG_ENOENT);
	ck_assert_int_eq(mqlog_group_delete(db, "dead", TOPIC, 0),
			 MQLOG_ENOENT);
	ck_assert_uint_eq(read_all(t, &first), 200);
	ck_assert_uint_eq(first, 700);
	/* Forced: the live member is removed and the group with it. */
	ck_assert_int_eq(
		mqlog_group_delete(db, "live", TOPIC, MQLOG_RESET_FORCE), 0);
	mqlog_interest_info ii;
	ck_assert_int_eq(mqlog_partition_interest(t, 0, &ii), 0);
	ck_assert_uint_eq(ii.groups, 0);
	mqlog_partition_offset po = { 0, 800 };
	ck_assert_int_eq(mqlog_consumer_commit_offsets(a, &po, 1),
			 MQLOG_ESTALE);
	mqlog_consumer_close(a);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_bad_arguments)
{
	/* Bad arguments: an error naming the problem, and nothing changed. */
	mqlog *db = open_db();
	mqlog_topic_config c;
	mqlog_interest_info ii;

	mqlog_topic_config_init(&c);
	c.interest = 2;
	ck_assert_int_eq(mqlog_topic_create(db, TOPIC, &c), MQLOG_EINVAL);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(NULL), "interest"));
	mqlog_topic *t;
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), MQLOG_ENOENT);

	t = make_topic(db, 1, MQLOG_UNLIMITED, MQLOG_UNLIMITED,
		       MQLOG_FULL_DROP_OLDEST);
	ck_assert_int_eq(append_n(t, 0, 300), 0);
	mqlog_consumer *a = member(t, "g");
	commit(a, 50);
	ck_assert_int_eq(mqlog_group_delete(NULL, "g", TOPIC, 0), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_group_delete(db, NULL, TOPIC, 0), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_group_delete(db, "bad/name", TOPIC, 0),
			 MQLOG_EINVAL);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(NULL), "bad/name"));
	ck_assert_int_eq(mqlog_group_delete(db, "g", NULL, 0), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_group_delete(db, "g", TOPIC, 0x80),
			 MQLOG_EINVAL);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(NULL), "flags"));
	ck_assert_int_eq(mqlog_group_delete(db, "g", "nosuch", 0),
			 MQLOG_ENOENT);
	ck_assert_int_eq(mqlog_group_delete(db, "other", TOPIC, 0),
			 MQLOG_ENOENT);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(NULL), "other"));
	ck_assert_int_eq(mqlog_partition_interest(NULL, 0, &ii), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_partition_interest(t, 0, NULL), MQLOG_EINVAL);
	ck_assert_int_eq(mqlog_partition_interest(t, 7, &ii), MQLOG_EINVAL);
	/* Still registered, still at 50. */
	ck_assert_int_eq(mqlog_partition_interest(t, 0, &ii), 0);
	ck_assert_uint_eq(ii.groups, 1);
	ck_assert_uint_eq(ii.floor, 50);
	ck_assert_uint_eq(start_of(t), 50);
	mqlog_consumer_close(a);
	mqlog_topic_close(t);
	mqlog_close(db);

	/* Read-only: refused, nothing changed. */
	mqlog_options o;
	mqlog_options_init(&o);
	o.flags = MQLOG_OPEN_RDONLY;
	ck_assert_int_eq(mqlog_open(fx_dir, &o, &db), 0);
	ck_assert_int_eq(mqlog_group_delete(db, "g", TOPIC, 0), MQLOG_ERDONLY);
	mqlog_close(db);
	db = open_db();
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	ck_assert_int_eq(mqlog_partition_interest(t, 0, &ii), 0);
	ck_assert_uint_eq(ii.groups, 1);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_crash_keeps_uncommitted)
{
	/* A process killed in the middle of an interest deletion (after
	 * the new start is durable, before the files go) loses nothing
	 * that was not committed: recovery finishes the deletion, the start
	 * is the committed offset and every later record reads back. */
	mqlog *db = open_db();
	mqlog_topic *t = make_topic(db, 1, MQLOG_UNLIMITED, MQLOG_UNLIMITED,
				    MQLOG_FULL_DROP_OLDEST);
	ck_assert_int_eq(append_n(t, 0, 1000), 0);
	mqlog_topic_close(t);
	mqlog_close(db);

	const char *points[] = { "retention.after_persist",
				 "retention.after_unlink" };
	uint64_t committed[] = { 450, 820 };
	for (int i = 0; i < 2; i++) {
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			mqlog *cdb;
			mqlog_topic *ct;
			mqlog_consumer *c;
			mqlog_consumer_options o;
			if (mqlog_open(fx_dir, NULL, &cdb) ||
			    mqlog_topic_open(cdb, TOPIC, &ct))
				_exit(2);
			mqlog_consumer_options_init(&o);
			o.group = "g";
			o.commit_mode = MQLOG_COMMIT_MANUAL;
			if (mqlog_consumer_open(ct, &o, &c))
				_exit(3);
			io_crash_arm(points[i], 1);
			mqlog_partition_offset po = { 0, committed[i] };
			if (mqlog_consumer_seek(c, 0, committed[i]))
				_exit(5);
			(void)mqlog_consumer_commit_offsets(c, &po, 1);
			_exit(4); /* the crash point should have fired */
		}
		int status;
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status) &&
				      WTERMSIG(status) == SIGKILL,
			      "child status %d", status);

		db = open_db();
		ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
		uint64_t first, base0;
		ck_assert_uint_eq(start_of(t), committed[i]);
		ck_assert_uint_eq(read_all(t, &first), 1000 - committed[i]);
		ck_assert_uint_eq(first, committed[i]);
		(void)nsegs(&base0);
		ck_assert_uint_le(base0, committed[i]);
		mqlog_topic_close(t);
		ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
		mqlog_close(db);
	}
}
END_TEST

START_TEST(test_kill9_commit_loop)
{
	/* A consumer process commits in a loop and is killed at a random
	 * moment: afterwards the start never passes the durable committed
	 * offset, and every record from there on reads back. */
	mqlog *db = open_db();
	mqlog_topic *t = make_topic(db, 1, MQLOG_UNLIMITED, MQLOG_UNLIMITED,
				    MQLOG_FULL_DROP_OLDEST);
	ck_assert_int_eq(append_n(t, 0, 3000), 0);
	mqlog_topic_close(t);
	mqlog_close(db);

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		mqlog *cdb;
		mqlog_topic *ct;
		mqlog_consumer *c;
		mqlog_consumer_options o;
		if (mqlog_open(fx_dir, NULL, &cdb) ||
		    mqlog_topic_open(cdb, TOPIC, &ct))
			_exit(2);
		mqlog_consumer_options_init(&o);
		o.group = "g";
		o.commit_mode = MQLOG_COMMIT_MANUAL;
		if (mqlog_consumer_open(ct, &o, &c))
			_exit(3);
		for (uint64_t off = 1; off <= 3000; off += 7) {
			mqlog_partition_offset po = { 0, off };
			if (mqlog_consumer_seek(c, 0, off) ||
			    mqlog_consumer_commit_offsets(c, &po, 1))
				_exit(4);
		}
		_exit(0);
	}
	h_sleep_ms(150);
	kill(pid, SIGKILL);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);

	db = open_db();
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	mqlog_group_info *gi = NULL;
	ck_assert_int_eq(mqlog_group_describe(db, "g", TOPIC, &gi), 0);
	uint64_t committed = gi->partitions[0].has_committed ?
				     gi->partitions[0].committed :
				     0;
	mqlog_group_info_free(gi, 1);
	/* Dead member: the group may be deleted now. */
	uint64_t first = 0, n = read_all(t, &first);
	ck_assert_uint_le(start_of(t), committed);
	ck_assert_uint_eq(start_of(t), committed); /* recomputed exactly */
	ck_assert_uint_eq(n, 3000 - committed);
	if (n)
		ck_assert_uint_eq(first, committed);
	ck_assert_int_eq(mqlog_group_delete(db, "g", TOPIC, 0), 0);
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Block policy woken by commits                                            */
/* ------------------------------------------------------------------------ */

struct committer {
	mqlog_consumer *c; /* member that commits */
	unsigned ms;	   /* after this long */
	uint64_t offset;   /* this offset */
};

static void *commit_later(void *arg)
{
	struct committer *k = arg;
	h_sleep_ms(k->ms);
	mqlog_partition_offset po = { 0, k->offset };
	ck_assert_int_eq(mqlog_consumer_seek(k->c, 0, k->offset), 0);
	ck_assert_int_eq(mqlog_consumer_commit_offsets(k->c, &po, 1), 0);
	return NULL;
}

START_TEST(test_block_unblocks_on_commit_threads)
{
	/* Interest retention with max-messages and block: a producer on a
	 * full partition waits until a consumer commits, which frees the
	 * committed records, then appends. */
	mqlog *db = open_db();
	mqlog_topic *t =
		make_topic(db, 1, 5, MQLOG_UNLIMITED, MQLOG_FULL_BLOCK);
	pthread_t th;

	ck_assert_int_eq(append_n(t, 0, 5), 0);
	mqlog_consumer *c = member(t, "g");
	struct committer k = { c, 150, 3 };
	double t0 = h_mono_ms();
	ck_assert_int_eq(pthread_create(&th, NULL, commit_later, &k), 0);
	ck_assert_int_eq(append_n(t, 5, 3), 0);
	double waited = h_mono_ms() - t0;
	pthread_join(th, NULL);
	ck_assert_msg(waited >= 100 && waited < 4000, "waited %.0f ms", waited);
	uint64_t first;
	ck_assert_uint_eq(read_all(t, &first), 5);
	ck_assert_uint_eq(first, 3);
	/* Full again and nothing more committed: the wait times out. */
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_block_bytes_unblocks_on_commit)
{
	/* The same with a byte limit: the commit frees whole segments. */
	mqlog *db = open_db();
	mqlog_topic *t =
		make_topic(db, 1, MQLOG_UNLIMITED, 3 * 4096, MQLOG_FULL_BLOCK);
	pthread_t th;
	int n = 0;

	/* Fill to the limit with equal records: the next would block. */
	uint64_t sz = 0;
	for (;; n++) {
		uint64_t before = h_info(t, 0).bytes;
		if (sz && before + sz > 3 * 4096)
			break;
		h_append1(t, 0, "0123456789");
		sz = h_info(t, 0).bytes - before;
	}
	mqlog_consumer *c = member(t, "g");
	struct committer k = { c, 150, (uint64_t)n };
	double t0 = h_mono_ms();
	ck_assert_int_eq(pthread_create(&th, NULL, commit_later, &k), 0);
	ck_assert_int_eq(append_n(t, (uint64_t)n, 1), 0);
	double waited = h_mono_ms() - t0;
	pthread_join(th, NULL);
	ck_assert_msg(waited >= 100 && waited < 4000, "waited %.0f ms", waited);
	ck_assert_uint_le(h_info(t, 0).bytes, 3 * 4096);
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_block_unblocks_on_commit_process)
{
	/* A producer blocked in one process is woken by a commit made by a
	 * consumer in another process. */
	mqlog *db = open_db();
	mqlog_topic *t =
		make_topic(db, 1, 5, MQLOG_UNLIMITED, MQLOG_FULL_BLOCK);
	ck_assert_int_eq(append_n(t, 0, 5), 0);
	mqlog_consumer *c = member(t, "g");

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		mqlog *cdb;
		mqlog_topic *ct;
		if (mqlog_open(fx_dir, NULL, &cdb) ||
		    mqlog_topic_open(cdb, TOPIC, &ct))
			_exit(2);
		int rc = append_n(ct, 5, 2);
		mqlog_topic_close(ct);
		mqlog_close(cdb);
		_exit(rc != 0 ? 1 : 0);
	}
	/* The child is blocked: nothing of it is written yet. */
	h_sleep_ms(300);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 5);
	commit(c, 4);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child status %d", status);
	uint64_t first;
	ck_assert_uint_eq(read_all(t, &first), 3);
	ck_assert_uint_eq(first, 4);
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Reader pins                                                              */
/* ------------------------------------------------------------------------ */

/* Child: open a reader at the start, read one record, report, wait. */
static void pinned_reader_child(int ready_fd, int go_fd)
{
	mqlog *cdb;
	mqlog_topic *ct;
	mqlog_reader *r;
	mqlog_record rec;
	char ch = 'r';

	if (mqlog_open(fx_dir, NULL, &cdb) ||
	    mqlog_topic_open(cdb, TOPIC, &ct) || mqlog_reader_open(ct, 0, &r) ||
	    mqlog_reader_next(r, &rec) != 1)
		_exit(2);
	if (write(ready_fd, &ch, 1) != 1)
		_exit(3);
	if (read(go_fd, &ch, 1) != 1)
		_exit(0); /* parent went away */
	mqlog_reader_close(r);
	mqlog_topic_close(ct);
	mqlog_close(cdb);
	_exit(0);
}

static pid_t spawn_reader(int *go_w)
{
	int ready[2], go[2];
	char ch;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		pinned_reader_child(ready[1], go[0]);
	}
	close(ready[1]);
	close(go[0]);
	ck_assert_int_eq(read(ready[0], &ch, 1), 1);
	close(ready[0]);
	*go_w = go[1];
	return pid;
}

START_TEST(test_reader_in_other_process_keeps_segment)
{
	/* A reader in another process pins its segment: the count limit
	 * still moves the start exactly, but the file stays until the
	 * reader closes; then the next append deletes it. */
	mqlog *db = open_db();
	mqlog_topic *t =
		make_topic(db, 0, 100, MQLOG_UNLIMITED, MQLOG_FULL_DROP_OLDEST);
	int go;
	ck_assert_int_eq(append_n(t, 0, 50), 0);
	pid_t pid = spawn_reader(&go);

	ck_assert_int_eq(append_n(t, 50, 1000), 0);
	ck_assert_uint_eq(start_of(t), 950);
	ck_assert(h_exists(h_seg_path(fx_dir, TOPIC, 0, 0)));
	uint64_t first;
	ck_assert_uint_eq(read_all(t, &first), 100);
	ck_assert_uint_eq(first, 950);

	ck_assert_int_eq(write(go, "g", 1), 1);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(go);
	/* The next append hands the deletion to the background thread. */
	ck_assert_int_eq(append_n(t, 1050, 1), 0);
	for (int i = 0; i < 200 && h_exists(h_seg_path(fx_dir, TOPIC, 0, 0));
	     i++)
		h_sleep_ms(10);
	ck_assert(!h_exists(h_seg_path(fx_dir, TOPIC, 0, 0)));
	uint64_t base0;
	(void)nsegs(&base0);
	ck_assert_uint_le(base0, 951);
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);
}
END_TEST

START_TEST(test_killed_reader_releases_pin)
{
	/* A reader process killed with SIGKILL leaves its pin behind; the
	 * pin is recognised as dead and the segment goes. */
	mqlog *db = open_db();
	mqlog_topic *t =
		make_topic(db, 0, 100, MQLOG_UNLIMITED, MQLOG_FULL_DROP_OLDEST);
	int go;
	ck_assert_int_eq(append_n(t, 0, 50), 0);
	pid_t pid = spawn_reader(&go);
	ck_assert_int_eq(append_n(t, 50, 1000), 0);
	ck_assert(h_exists(h_seg_path(fx_dir, TOPIC, 0, 0)));
	kill(pid, SIGKILL);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	close(go);
	h_sleep_ms(150); /* past the pin liveness check period */
	ck_assert_int_eq(mqlog_maintain(db, TOPIC), 0);
	ck_assert(!h_exists(h_seg_path(fx_dir, TOPIC, 0, 0)));
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_bytes_limit_spares_reader)
{
	/* Whole-segment retention (bytes) does not take a segment a reader
	 * is in: the reader goes on from where it was, through every
	 * record, with no gap and no MQLOG_ERANGE, while a producer fills
	 * far past the limit; once it has moved on, the limit holds. */
	mqlog *db = open_db();
	mqlog_topic *t = make_topic(db, 0, MQLOG_UNLIMITED, 4 * 4096,
				    MQLOG_FULL_DROP_OLDEST);
	mqlog_reader *r;
	mqlog_record rec;
	uint64_t next = 0;
	int rc;

	ck_assert_int_eq(append_n(t, 0, 10), 0);
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, next++);
	ck_assert_int_eq(append_n(t, 10, 1500), 0);
	ck_assert_uint_eq(start_of(t), 0);
	while ((rc = mqlog_reader_next(r, &rec)) == 1)
		ck_assert_uint_eq(rec.offset, next++);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(next, 1510);
	ck_assert_int_eq(mqlog_maintain(db, TOPIC), 0);
	ck_assert_uint_le(h_info(t, 0).bytes, 4 * 4096);
	ck_assert_uint_gt(start_of(t), 0);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_interest_across_processes)
{
	/* A commit made in another process frees records in this one's
	 * view, and interest retention applies when that process rolls. */
	mqlog *db = open_db();
	mqlog_topic *t = make_topic(db, 1, MQLOG_UNLIMITED, MQLOG_UNLIMITED,
				    MQLOG_FULL_DROP_OLDEST);
	ck_assert_int_eq(append_n(t, 0, 800), 0);

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		mqlog *cdb;
		mqlog_topic *ct;
		mqlog_consumer *c;
		mqlog_consumer_options o;
		if (mqlog_open(fx_dir, NULL, &cdb) ||
		    mqlog_topic_open(cdb, TOPIC, &ct))
			_exit(2);
		mqlog_consumer_options_init(&o);
		o.group = "remote";
		o.commit_mode = MQLOG_COMMIT_MANUAL;
		if (mqlog_consumer_open(ct, &o, &c))
			_exit(3);
		mqlog_partition_offset po = { 0, 555 };
		int rc = mqlog_consumer_seek(c, 0, 555);
		if (!rc)
			rc = mqlog_consumer_commit_offsets(c, &po, 1);
		mqlog_consumer_close(c);
		mqlog_topic_close(ct);
		mqlog_close(cdb);
		_exit(rc ? 1 : 0);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_uint_eq(start_of(t), 555);
	uint64_t first;
	ck_assert_uint_eq(read_all(t, &first), 245);
	ck_assert_uint_eq(first, 555);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

struct tail_reader {
	mqlog_topic *t;	  /* topic */
	int stop;	  /* atomic: the producer is done */
	uint64_t records; /* records read */
	uint64_t ranges;  /* MQLOG_ERANGE seen (count limit overtook us) */
};

static void *tail_main(void *arg)
{
	struct tail_reader *tr = arg;
	mqlog_reader *r;
	mqlog_record rec;
	char want[32];
	uint64_t last = 0;
	bool any = false;

	ck_assert_int_eq(mqlog_reader_open(tr->t, 0, &r), 0);
	for (;;) {
		int rc = mqlog_reader_next(r, &rec);
		if (rc == 1) {
			snprintf(want, sizeof want, "v%llu",
				 (unsigned long long)rec.offset);
			ck_assert_uint_eq(rec.value.len, strlen(want));
			ck_assert(memcmp(rec.value.data, want, rec.value.len) ==
				  0);
			ck_assert(!any || rec.offset > last);
			last = rec.offset;
			any = true;
			tr->records++;
			continue;
		}
		if (rc == MQLOG_ERANGE) {
			tr->ranges++;
			ck_assert_int_eq(
				mqlog_reader_seek(r, MQLOG_OFFSET_EARLIEST), 0);
			continue;
		}
		ck_assert_msg(rc == 0, "reader: %s", mqlog_errmsg(NULL));
		if (__atomic_load_n(&tr->stop, __ATOMIC_ACQUIRE))
			break;
		(void)mqlog_reader_wait(r, 20);
	}
	mqlog_reader_close(r);
	return NULL;
}

START_TEST(test_count_limit_with_tailing_reader)
{
	/* A producer far outruns a count limit while a reader tails the
	 * partition and the background thread deletes segments: every
	 * record the reader gets is intact and in order, it is only ever
	 * told MQLOG_ERANGE (never given a damaged or missing record), and
	 * afterwards exactly the newest N remain and the directory
	 * verifies. */
	mqlog *db = open_db();
	mqlog_topic *t =
		make_topic(db, 0, 300, MQLOG_UNLIMITED, MQLOG_FULL_DROP_OLDEST);
	struct tail_reader tr = { .t = t };
	pthread_t th;

	ck_assert_int_eq(pthread_create(&th, NULL, tail_main, &tr), 0);
	ck_assert_int_eq(append_n(t, 0, 20000), 0);
	__atomic_store_n(&tr.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	ck_assert_uint_gt(tr.records, 0);
	uint64_t first;
	ck_assert_uint_eq(read_all(t, &first), 300);
	ck_assert_uint_eq(first, 19700);
	/* No segment is left wholly below the start. */
	ck_assert_int_eq(mqlog_maintain(db, TOPIC), 0);
	uint64_t bases[64];
	size_t ns = h_seg_list(fx_dir, TOPIC, 0, bases, 64);
	ck_assert_uint_ge(ns, 2);
	ck_assert_uint_le(ns, 64);
	ck_assert_uint_le(bases[0], 19700);
	ck_assert_uint_gt(bases[1], 19700);
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);
}
END_TEST

static Suite *interest_suite(void)
{
	Suite *s = suite_create("interest");
	TCase *tc = tcase_create("interest");

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_no_group_frees_nothing);
	tcase_add_test(tc, test_frees_exactly_committed);
	tcase_add_test(tc, test_second_group_pins);
	tcase_add_test(tc, test_group_delete_releases);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_crash_keeps_uncommitted);
	tcase_add_test(tc, test_kill9_commit_loop);
	tcase_add_test(tc, test_block_unblocks_on_commit_threads);
	tcase_add_test(tc, test_block_bytes_unblocks_on_commit);
	tcase_add_test(tc, test_block_unblocks_on_commit_process);
	tcase_add_test(tc, test_reader_in_other_process_keeps_segment);
	tcase_add_test(tc, test_killed_reader_releases_pin);
	tcase_add_test(tc, test_bytes_limit_spares_reader);
	tcase_add_test(tc, test_interest_across_processes);
	tcase_add_test(tc, test_count_limit_with_tailing_reader);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(interest_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
