/*
 * test_multiproc.c - several processes on one directory: concurrent
 * appenders get dense offsets with whole batches, a process killed in the
 * middle of appending leaves a usable partition with no partial batch, and
 * readers in other processes only ever see whole batches.
 *
 * Every child opens the directory itself after fork() and leaves with
 * _exit(), so it never touches a handle of its parent.
 */
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include "helpers.h"

static const char *dbdir(void)
{
	return fx_dir;
}

/* Values are "P<proc>:<seq>:<j>/<k>": record j of k in batch seq of proc. */
struct tag {
	int proc, seq, j, k;
};

static int parse_tag(const struct h_rec *r, struct tag *t)
{
	return r->val && sscanf(r->val, "P%d:%d:%d/%d", &t->proc, &t->seq,
				&t->j, &t->k) == 4;
}

/* Append @batches batches tagged @proc (k = 1 + seq % 3 records each).
 * Used in children: reports failure through the exit status. */
static int append_tagged(mqlog_topic *t, int proc, int batches, int sync)
{
	char vals[3][48];
	mqlog_msg m[3];
	for (int seq = 0; seq < batches; seq++) {
		int k = 1 + seq % 3;
		for (int j = 0; j < k; j++) {
			snprintf(vals[j], sizeof vals[j], "P%d:%d:%d/%d", proc,
				 seq, j, k);
			m[j] = h_msg(vals[j], MQLOG_TIMESTAMP_NOW);
		}
		if (mqlog_append(t, 0, m, (size_t)k, sync, NULL) != 0)
			return -1;
	}
	return 0;
}

static int wait_child(pid_t pid)
{
	int status = 0;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * Check the partition: offsets dense from 0, every batch whole and
 * contiguous, each process's batches in order.  @complete: the number of
 * batches each of @nproc processes must have (-1: any).  Returns the number
 * of records.
 */
static uint64_t check_tagged(mqlog_topic *t, int nproc, int complete)
{
	struct h_recs rs = { 0 };
	int next_seq[16] = { 0 };
	size_t i = 0;
	uint64_t n;
	ck_assert_int_le(nproc, 16);
	h_read_all(t, 0, &rs);
	while (i < rs.n) {
		struct tag a, b;
		ck_assert_msg(parse_tag(&rs.r[i], &a), "bad value at %zu", i);
		ck_assert(a.proc >= 0 && a.proc < nproc);
		ck_assert_msg(a.j == 0,
			      "batch P%d:%d starts at record %d (offset %zu)",
			      a.proc, a.seq, a.j, i);
		ck_assert_msg(a.seq == next_seq[a.proc],
			      "P%d: batch %d after %d", a.proc, a.seq,
			      next_seq[a.proc] - 1);
		for (int j = 0; j < a.k; j++) {
			ck_assert_msg(i + (size_t)j < rs.n,
				      "partial batch at the end (offset %zu)",
				      i);
			ck_assert_uint_eq(rs.r[i + (size_t)j].off,
					  i + (size_t)j);
			ck_assert(parse_tag(&rs.r[i + (size_t)j], &b));
			ck_assert_msg(b.proc == a.proc && b.seq == a.seq &&
					      b.j == j && b.k == a.k,
				      "batch P%d:%d interleaved at offset %zu",
				      a.proc, a.seq, i + (size_t)j);
		}
		next_seq[a.proc]++;
		i += (size_t)a.k;
	}
	if (complete >= 0)
		for (int p = 0; p < nproc; p++)
			ck_assert_int_eq(next_seq[p], complete);
	n = rs.n;
	ck_assert_uint_eq(h_info(t, 0).end_offset, n);
	h_recs_free(&rs);
	return n;
}

static uint64_t records_of(int batches)
{
	uint64_t n = 0;
	for (int seq = 0; seq < batches; seq++)
		n += 1 + (uint64_t)(seq % 3);
	return n;
}

static void create_topic(int sync, uint64_t segment_bytes)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, segment_bytes, sync);
	h_create(db, "t", &c);
	mqlog_close(db);
}

/* Child body: open, append, close, exit 0 (or a failure code). */
static void appender_child(int proc, int batches, int sync)
{
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	int rc = 0;
	if (mqlog_open(dbdir(), NULL, &db) != 0)
		_exit(10);
	if (mqlog_topic_open(db, "t", &t) != 0)
		_exit(11);
	if (append_tagged(t, proc, batches, sync) != 0)
		rc = 12;
	mqlog_topic_close(t);
	mqlog_close(db);
	_exit(rc);
}

static void run_appenders(int nproc, int batches, int sync)
{
	pid_t pids[16];
	create_topic(MQLOG_SYNC_NONE, 64 * 1024);
	fflush(NULL);
	for (int p = 0; p < nproc; p++) {
		pids[p] = fork();
		ck_assert_int_ge(pids[p], 0);
		if (pids[p] == 0)
			appender_child(p, batches, sync);
	}
	for (int p = 0; p < nproc; p++)
		ck_assert_msg(wait_child(pids[p]) == 0, "appender %d failed",
			      p);
	{
		mqlog *db = h_open(dbdir());
		mqlog_topic *t = h_topic(db, "t");
		ck_assert_uint_eq(check_tagged(t, nproc, batches),
				  (uint64_t)nproc * records_of(batches));
		ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
		mqlog_topic_close(t);
		mqlog_close(db);
	}
}

/* ------------------------------------------------------------------------ */

/* Two processes appending 1000 batches each to one partition produce dense
 * offsets with whole batches and each process's batches in order. */
START_TEST(test_two_appenders)
{
	run_appenders(2, 1000, MQLOG_SYNC_DEFAULT);
}
END_TEST

/* Four processes appending 1000 batches each, likewise. */
START_TEST(test_four_appenders)
{
	run_appenders(4, 1000, MQLOG_SYNC_DEFAULT);
}
END_TEST

/* Two processes making ALWAYS appends (cross-process group commit) all
 * succeed with dense offsets. */
START_TEST(test_two_appenders_always)
{
	run_appenders(2, 150, MQLOG_SYNC_ALWAYS);
}
END_TEST

/* A child that keeps appending is killed with SIGKILL after a few ms,
 * several times: each time the partition stays usable, with dense offsets,
 * no partial batch, and appends from the parent continue at the end. */
START_TEST(test_sigkill_appender)
{
	uint64_t seed = 2024;
	int parent_batches = 0;
	create_topic(MQLOG_SYNC_NONE, 16 * 1024);
	for (int round = 0; round < 8; round++) {
		pid_t pid;
		int ready[2];
		char c;
		unsigned delay = 1 + (unsigned)(h_rand(&seed) % 15);
		ck_assert_int_eq(pipe(ready), 0);
		fflush(NULL);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			mqlog *db = NULL;
			mqlog_topic *t = NULL;
			close(ready[0]);
			if (mqlog_open(dbdir(), NULL, &db) != 0 ||
			    mqlog_topic_open(db, "t", &t) != 0)
				_exit(10);
			c = 'r';
			if (write(ready[1], &c, 1) != 1)
				_exit(11);
			/* Proc 1 + round; batches until killed. */
			append_tagged(t, 1 + round, 1 << 30, MQLOG_SYNC_NONE);
			_exit(12);
		}
		close(ready[1]);
		ck_assert_int_eq(read(ready[0], &c, 1), 1);
		close(ready[0]);
		h_sleep_ms(delay);
		ck_assert_int_eq(kill(pid, SIGKILL), 0);
		ck_assert_int_eq(wait_child(pid), 128 + SIGKILL);

		{
			mqlog *db = h_open(dbdir());
			mqlog_topic *t = h_topic(db, "t");
			uint64_t n = check_tagged(t, 1 + round + 1, -1);
			uint64_t base;
			char vals[2][48];
			const char *vp[2] = { vals[0], vals[1] };
			snprintf(vals[0], sizeof vals[0], "P0:%d:0/2",
				 parent_batches);
			snprintf(vals[1], sizeof vals[1], "P0:%d:1/2",
				 parent_batches);
			base = h_append_strs(t, 0, vp, 2, MQLOG_TIMESTAMP_NOW,
					     MQLOG_SYNC_DEFAULT);
			ck_assert_uint_eq(base, n);
			parent_batches++;
			ck_assert_int_eq(
				mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
			mqlog_topic_close(t);
			mqlog_close(db);
		}
	}
	/* The parent's own batches are all there, in order. */
	{
		mqlog *db = h_open(dbdir());
		mqlog_topic *t = h_topic(db, "t");
		struct h_recs rs = { 0 };
		int seen = 0;
		check_tagged(t, 9, -1);
		h_read_all(t, 0, &rs);
		for (size_t i = 0; i < rs.n; i++) {
			struct tag a;
			ck_assert(parse_tag(&rs.r[i], &a));
			if (a.proc == 0 && a.j == 0)
				ck_assert_int_eq(a.seq, seen++);
		}
		ck_assert_int_eq(seen, parent_batches);
		h_recs_free(&rs);
		mqlog_topic_close(t);
		mqlog_close(db);
	}
}
END_TEST

/* Reader child: follows the partition until it has read @target records,
 * checking that it only ever stops at batch boundaries.  Exit 0 on
 * success. */
static void reader_child(uint64_t target)
{
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	mqlog_reader *r = NULL;
	mqlog_record rec;
	uint64_t got = 0;
	struct tag last = { -1, -1, 0, 1 };
	int idle = 0;
	if (mqlog_open(dbdir(), NULL, &db) != 0 ||
	    mqlog_topic_open(db, "t", &t) != 0 ||
	    mqlog_reader_open(t, 0, &r) != 0)
		_exit(20);
	while (got < target) {
		int rc = mqlog_reader_next(r, &rec);
		if (rc == 1) {
			char buf[64];
			struct tag a;
			if (rec.offset != got || rec.value.len >= sizeof buf)
				_exit(21);
			memcpy(buf, rec.value.data, rec.value.len);
			buf[rec.value.len] = '\0';
			if (sscanf(buf, "P%d:%d:%d/%d", &a.proc, &a.seq, &a.j,
				   &a.k) != 4)
				_exit(22);
			/* Contiguous within a batch. */
			if (a.j != 0 &&
			    (a.proc != last.proc || a.seq != last.seq ||
			     a.j != last.j + 1))
				_exit(23);
			last = a;
			got++;
			idle = 0;
		} else if (rc == 0) {
			/* At the end: never in the middle of a batch. */
			if (last.j != last.k - 1)
				_exit(24);
			rc = mqlog_reader_wait(r, 200);
			if (rc != 0 && rc != MQLOG_ETIMEDOUT)
				_exit(25);
			if (rc == MQLOG_ETIMEDOUT && ++idle > 50)
				_exit(26); /* 10 s without progress */
		} else {
			_exit(27);
		}
	}
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
	_exit(0);
}

/* Readers in other processes, reading while two processes append, see only
 * whole batches and every record in order. */
START_TEST(test_concurrent_readers)
{
	const int batches = 600;
	uint64_t target = 2 * records_of(batches);
	pid_t readers[2], writers[2];
	create_topic(MQLOG_SYNC_NONE, 32 * 1024);
	fflush(NULL);
	for (int i = 0; i < 2; i++) {
		readers[i] = fork();
		ck_assert_int_ge(readers[i], 0);
		if (readers[i] == 0)
			reader_child(target);
	}
	for (int i = 0; i < 2; i++) {
		writers[i] = fork();
		ck_assert_int_ge(writers[i], 0);
		if (writers[i] == 0)
			appender_child(i, batches, MQLOG_SYNC_NONE);
	}
	for (int i = 0; i < 2; i++)
		ck_assert_msg(wait_child(writers[i]) == 0, "writer %d failed",
			      i);
	for (int i = 0; i < 2; i++) {
		int st = wait_child(readers[i]);
		ck_assert_msg(st == 0, "reader %d exited with %d", i, st);
	}
	{
		mqlog *db = h_open(dbdir());
		mqlog_topic *t = h_topic(db, "t");
		ck_assert_uint_eq(check_tagged(t, 2, batches), target);
		mqlog_topic_close(t);
		mqlog_close(db);
	}
}
END_TEST

/* A child forked while the parent has the directory open opens it again
 * itself (as the API requires) and both processes append and read
 * consistently. */
START_TEST(test_fork_with_open_parent)
{
	mqlog *db;
	mqlog_topic *t;
	pid_t pid;
	create_topic(MQLOG_SYNC_NONE, 1 << 20);
	db = h_open(dbdir());
	t = h_topic(db, "t");
	ck_assert_int_eq(append_tagged(t, 0, 10, MQLOG_SYNC_DEFAULT), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		appender_child(1, 10, MQLOG_SYNC_DEFAULT);
	ck_assert_int_eq(wait_child(pid), 0);
	/* The parent's handles still work and see the child's batches. */
	ck_assert_uint_eq(h_info(t, 0).end_offset, 2 * records_of(10));
	{
		char v[2][48];
		const char *vp[2] = { v[0], v[1] };
		snprintf(v[0], sizeof v[0], "P0:10:0/2");
		snprintf(v[1], sizeof v[1], "P0:10:1/2");
		ck_assert_uint_eq(h_append_strs(t, 0, vp, 2, 1,
						MQLOG_SYNC_DEFAULT),
				  2 * records_of(10));
	}
	check_tagged(t, 2, -1);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A topic deleted by one process while another has it open: the other
 * process's appends get MQLOG_EDELETED instead of writing anywhere. */
START_TEST(test_delete_while_open_elsewhere)
{
	int ready[2], go[2];
	pid_t pid;
	char c;
	create_topic(MQLOG_SYNC_NONE, 1 << 20);
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		mqlog *db = NULL;
		mqlog_topic *t = NULL;
		mqlog_msg m = h_msg("late", 1);
		int rc;
		close(ready[0]);
		close(go[1]);
		if (mqlog_open(dbdir(), NULL, &db) != 0 ||
		    mqlog_topic_open(db, "t", &t) != 0 ||
		    append_tagged(t, 1, 3, MQLOG_SYNC_NONE) != 0)
			_exit(10);
		c = 'r';
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(11);
		rc = mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL);
		mqlog_topic_close(t);
		mqlog_close(db);
		_exit(rc == MQLOG_EDELETED ? 0 : rc == 0 ? 12 : 13);
	}
	close(ready[1]);
	close(go[0]);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	{
		mqlog *db = h_open(dbdir());
		ck_assert_int_eq(mqlog_topic_delete(db, "t"), 0);
		mqlog_close(db);
	}
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	{
		int st = wait_child(pid);
		ck_assert_msg(st == 0,
			      "child append after delete: exit %d "
			      "(12: it succeeded, 13: another error)",
			      st);
	}
	close(ready[0]);
	close(go[1]);
	{
		mqlog *db = h_open(dbdir());
		mqlog_topic *t = NULL;
		ck_assert_int_eq(mqlog_topic_open(db, "t", &t), MQLOG_ENOENT);
		ck_assert(!h_exists(fx_path("%s/topics/t", dbdir())));
		mqlog_close(db);
	}
}
END_TEST

static Suite *multiproc_suite(void)
{
	Suite *s = suite_create("multiproc");
	TCase *tc = tcase_create("concurrency");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_two_appenders);
	tcase_add_test(tc, test_four_appenders);
	tcase_add_test(tc, test_two_appenders_always);
	tcase_add_test(tc, test_sigkill_appender);
	tcase_add_test(tc, test_concurrent_readers);
	tcase_add_test(tc, test_fork_with_open_parent);
	tcase_add_test(tc, test_delete_while_open_elsewhere);
	suite_add_tcase(s, tc);
	return s;
}

H_MAIN(multiproc_suite)
