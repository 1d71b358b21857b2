/*
 * test_faults.c - an I/O error at every call site: the Nth call (N = 1, 2,
 * ...) of each io operation fails, once or from then on, with EIO, with
 * ENOSPC, as a short write (part of the bytes reach the file, then
 * ENOSPC) and as a failed fsync, during a workload that opens and recovers
 * a directory, creates a topic, appends (rolling segments), syncs, applies
 * retention, releases records and closes.  N runs until the workload no
 * longer reaches the Nth call.
 *
 * Pass criterion for every run:
 *   - no crash, and (under ASan) no leak;
 *   - every failing call returns an error with a message;
 *   - after an fsync error the partition is fail-stopped: later appends
 *     to it fail with MQLOG_EFAILED until the directory is reopened;
 *   - nothing acknowledged is lost: after the faults are cleared and the
 *     directory reopened, every record acknowledged before, during and
 *     after the fault is there, exactly, and mqlog_verify is clean;
 *   - nothing acknowledged was not durable: the run is recorded by the io
 *     layer and replayed on the power-loss model (plmodel.h); in the state
 *     that keeps only what was synced, every acknowledged record is there
 *     too.
 *
 * Also here: a tiny LMDB map (map_size) that must grow many times
 * (MDB_MAP_FULL), under appends and under recovery.  A real full file
 * system (tmpfs, as root) is in test_errors.c.
 */
#include <sys/wait.h>

#include "plmodel.h"

#define SEED   31
#define VMAX   400
#define NPART  2
#define RETAIN 40

static const char *const op_names[IO_OP_COUNT_] = {
	"open",	    "write",  "fdatasync", "dirsync",
	"truncate", "rename", "unlink",	   "mkdir",
};

/* One way to fail. */
struct mode {
	const char *name;
	int err;
	bool sticky;
	bool short_write;
};

static const struct mode modes[] = {
	{ "EIO once", EIO, false, false },
	{ "EIO from then on", EIO, true, false },
	{ "ENOSPC once", ENOSPC, false, false },
	{ "ENOSPC from then on", ENOSPC, true, false },
	{ "short write once", ENOSPC, false, true },
	{ "short writes from then on", ENOSPC, true, true },
};
#define NMODES (sizeof modes / sizeof modes[0])

static struct {
	unsigned long runs, fired, failed_calls, failstops, acked, audits;
	unsigned long by_op[IO_OP_COUNT_];
} tot;

/* What a run acknowledged, per partition. */
struct acked {
	uint64_t end[NPART];
	uint64_t start_max[NPART]; /* released up to here at most */
};

/*
 * The workload.  Tracks what was acknowledged in @a and checks the
 * promises that hold while the fault is armed.  @op is the failing op.
 */
static void workload(const char *dir, struct acked *a, enum io_op op,
		     const char *what);

/* Append @count batches, round robin over the partitions, checking the
 * promises that hold while a fault is armed. */
static void appends(mqlog *db, mqlog_topic *t, struct acked *a, int count,
		    enum io_op op, bool failed[NPART], const char *what)
{
	for (int i = 0; i < count; i++) {
		uint32_t p = (uint32_t)i % NPART;
		mqlog_partition_info info;
		uint64_t base = 0;
		size_t n = 1 + (size_t)(i % 3);
		int rc = mqlog_partition_stat(t, p, &info);

		if (rc) {
			/* Opening the partition (recovery) failed. */
			H_ASSERT_MSG(db);
			tot.failed_calls++;
			continue;
		}
		ck_assert_msg(info.end_offset >= a->end[p],
			      "%s: partition %u ends at %" PRIu64 ", %" PRIu64
			      " acknowledged",
			      what, p, info.end_offset, a->end[p]);
		rc = bt_append(t, SEED, p, info.end_offset, n, VMAX,
			       MQLOG_SYNC_DEFAULT, &base);
		if (rc == 0) {
			ck_assert_msg(!failed[p],
				      "%s: an append to fail-stopped partition "
				      "%u succeeded",
				      what, p);
			ck_assert_uint_eq(base, info.end_offset);
			a->end[p] = base + n;
			tot.acked++;
			continue;
		}
		H_ASSERT_MSG(db);
		tot.failed_calls++;
		if (failed[p]) {
			ck_assert_msg(
				rc == MQLOG_EFAILED,
				"%s: fail-stopped partition %u answered %s",
				what, p, mqlog_errname(rc));
			continue;
		}
		ck_assert_int_eq(mqlog_partition_stat(t, p, &info), 0);
		if (info.failed) {
			failed[p] = true;
			tot.failstops++;
		}
		/* The partition was open (stat above), so a failed fdatasync
		 * in this append was the roll's or the commit's: either
		 * fail-stops. */
		ck_assert_msg(op != IO_OP_SYNC || failed[p],
			      "%s: append failed with %s after a failed "
			      "fdatasync, but partition %u is not fail-stopped",
			      what, mqlog_errname(rc), p);
	}
}

/* Open @dir and topic "f" (creating it the first time); NULL on a
 * (checked) failure. */
static mqlog_topic *open_f(const char *dir, mqlog **db, bool create)
{
	mqlog_topic_config c = h_cfg(NPART, 4096, MQLOG_SYNC_ALWAYS);
	mqlog_topic *t = NULL;
	int rc;

	c.index_interval_bytes = 300;
	c.max_messages = RETAIN;
	*db = NULL;
	rc = mqlog_open(dir, NULL, db);
	if (rc && create) {
		/* An application tries again: what the failed open left
		 * behind must not be taken for durable. */
		H_ASSERT_MSG(NULL);
		tot.failed_calls++;
		rc = mqlog_open(dir, NULL, db);
	}
	if (rc) {
		H_ASSERT_MSG(NULL);
		tot.failed_calls++;
		return NULL;
	}
	if (create) {
		rc = mqlog_topic_create(*db, "f", &c);
		if (rc) {
			H_ASSERT_MSG(*db);
			tot.failed_calls++;
		}
		if (rc && rc != MQLOG_EEXIST)
			(void)mqlog_topic_create(*db, "f", &c);
	}
	rc = mqlog_topic_open(*db, "f", &t);
	if (rc) {
		H_ASSERT_MSG(*db);
		tot.failed_calls++;
		mqlog_close(*db);
		*db = NULL;
		return NULL;
	}
	return t;
}

/*
 * The workload: create the directory and topic "f", append, close; open
 * again (recovery), create topic "g", append, sync, release, apply
 * retention, close.  Tracks what was acknowledged in @a.
 */
static void workload(const char *dir, struct acked *a, enum io_op op,
		     const char *what)
{
	mqlog *db = NULL;
	mqlog_topic *t;
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_ALWAYS);
	bool failed[NPART] = { false, false };
	int rc;

	t = open_f(dir, &db, true);
	if (!t)
		return;
	appends(db, t, a, 8, op, failed, what);
	mqlog_topic_close(t);
	mqlog_close(db);

	/* A reopen clears fail-stops; recovery runs under the fault. */
	memset(failed, 0, sizeof failed);
	t = open_f(dir, &db, false);
	if (!t)
		return;
	rc = mqlog_topic_create(db, "g", &c);
	if (rc) {
		H_ASSERT_MSG(db);
		tot.failed_calls++;
	}
	appends(db, t, a, 30, op, failed, what);
	rc = mqlog_topic_sync(t);
	if (rc) {
		H_ASSERT_MSG(db);
		tot.failed_calls++;
	}
	/* Release a few records of partition 0 (retention, durable). */
	if (a->end[0] > 4) {
		rc = mqlog_partition_release(t, 0, a->end[0] - 4);
		if (rc) {
			H_ASSERT_MSG(db);
			tot.failed_calls++;
		}
		/* Released or not, records below the release may go. */
		a->start_max[0] = a->end[0] - 4;
	}
	rc = mqlog_maintain(db, NULL);
	if (rc)
		tot.failed_calls++;
	for (uint32_t p = 0; p < NPART; p++) {
		mqlog_partition_info info;
		if (mqlog_partition_stat(t, p, &info) == 0 && info.failed)
			ck_assert_int_eq(bt_append(t, SEED, p, info.end_offset,
						   1, VMAX, MQLOG_SYNC_NONE,
						   NULL),
					 MQLOG_EFAILED);
	}
	mqlog_topic_close(t);
	mqlog_close(db);
}

/* Everything acknowledged is in @dir (opened fresh, without faults). */
static void check_acked(const char *dir, const struct acked *a,
			const char *what)
{
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	char why[1024];
	int rc;

	rc = mqlog_open(dir, NULL, &db);
	ck_assert_msg(rc == 0, "%s: reopen: %s", what, mqlog_errmsg(NULL));
	rc = mqlog_topic_open(db, "f", &t);
	if (rc == MQLOG_ENOENT && a->end[0] == 0 && a->end[1] == 0) {
		mqlog_close(db); /* the create never went through */
		return;
	}
	ck_assert_msg(rc == 0, "%s: topic: %s", what, mqlog_errmsg(NULL));
	for (uint32_t p = 0; p < NPART; p++) {
		struct bt_expect e = { SEED, VMAX, a->end[p], 0, 1, true };
		struct bt_seen s;
		mqlog_partition_info info;
		ck_assert_int_eq(mqlog_partition_stat(t, p, &info), 0);
		/* Retention: the newest RETAIN stay; a release may have moved
		 * the start further. */
		e.max_start = a->start_max[p];
		if (info.end_offset > RETAIN &&
		    info.end_offset - RETAIN + 3 > e.max_start)
			e.max_start = info.end_offset - RETAIN + 3;
		ck_assert_msg(bt_check_partition(t, p, &e, &s, why,
						 sizeof why) == 0,
			      "%s: %s", what, why);
	}
	ck_assert_msg(bt_verify(db, NULL, why, sizeof why) == 0, "%s: %s", what,
		      why);
	mqlog_topic_close(t);
	mqlog_close(db);
}

/* The recorded run, replayed: in the state where only what was synced
 * survived, every acknowledged record is there. */
static void audit(const char *scratch, const char *root, const struct acked *a,
		  const char *what)
{
	static struct model m;
	struct run r;
	struct variant v = { DIRS_SYNCED, 0, DATA_NONE, 0, 0, 0, "synced" };
	char state[4300], meta[4400];

	memset(&r, 0, sizeof r);
	snprintf(r.root, sizeof r.root, "%s", root);
	r.nops = io_record_count();
	/* LMDB syncs its own commits: its file as the run left it. */
	r.snaps = calloc(1, sizeof *r.snaps);
	ck_assert_ptr_nonnull(r.snaps);
	r.nsnaps = 1;
	snprintf(meta, sizeof meta, "%s/db/meta/data.mdb", root);
	if (h_exists(meta))
		r.snaps[0].data = h_slurp(meta, &r.snaps[0].len);
	replay(&r, r.nops, &m);
	snprintf(state, sizeof state, "%s/audit", scratch);
	build_state(&r, &m, &v, state);
	model_free(&m);
	free(r.snaps[0].data);
	free(r.snaps);
	snprintf(meta, sizeof meta, "%s/db", state);
	check_acked(meta, a, what);
	fx_rmtree(state);
	tot.audits++;
}

/* One run: fresh copy of the base, fault armed, workload, checks. */
static bool one_run(const char *scratch, enum io_op op, const struct mode *md,
		    unsigned long nth)
{
	char root[4300], db[4400], what[200];
	struct acked a;
	bool fired;

	memset(&a, 0, sizeof a);
	snprintf(what, sizeof what, "%s of call %lu of %s", md->name, nth,
		 op_names[op]);
	snprintf(root, sizeof root, "%s/root", scratch);
	snprintf(db, sizeof db, "%s/db", root);
	fx_rmtree(root);
	ck_assert_int_eq(mkdir(root, 0755), 0);

	io_record_start();
	if (md->short_write)
		io_fault_set_short(op, nth, md->err, md->sticky);
	else
		io_fault_set(op, nth, md->err, md->sticky);
	workload(db, &a, op, what);
	fired = io_fault_fired() > 0;
	io_fault_clear();
	io_record_stop();

	tot.runs++;
	if (fired) {
		tot.fired++;
		tot.by_op[op]++;
	}
	audit(scratch, root, &a, what);
	io_record_free();
	check_acked(db, &a, what);
	return fired;
}

START_TEST(test_faults)
{
	char *scratch = bt_scratch();
	unsigned long max_n = bt_env_ul("MQLOG_FAULT_MAX_N", 400);
	int op = _i;

	ck_assert_ptr_nonnull(scratch);
	for (size_t k = 0; k < NMODES; k++) {
		const struct mode *md = &modes[k];
		if (md->short_write && op != IO_OP_WRITE)
			continue;
		/* Sanitized builds: every third N of the sticky modes. */
		unsigned long step = BT_SANITIZED && md->sticky ? 3 : 1;
		for (unsigned long n = 1; n <= max_n; n += step)
			if (!one_run(scratch, (enum io_op)op, md, n))
				break;
	}
	fx_rmtree(scratch);
	free(scratch);
	printf("faults: %s: %lu runs, %lu with the fault fired, %lu failed "
	       "calls, %lu fail-stops, %lu appends acknowledged, %lu "
	       "durability audits\n",
	       op_names[op], tot.runs, tot.fired, tot.failed_calls,
	       tot.failstops, tot.acked, tot.audits);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* MDB_MAP_FULL                                                             */
/* ------------------------------------------------------------------------ */

/* A map far too small for the index grows on demand: appends with an
 * entry per batch, recovery that rewrites them all, and a second open
 * asking for the tiny size again all work, and nothing is lost. */
START_TEST(test_map_full)
{
	char *dir = fx_tmpdir();
	mqlog_options o;
	mqlog *db;
	mqlog_topic *t;
	mqlog_topic_config c = h_cfg(2, 1 << 16, MQLOG_SYNC_NONE);
	uint64_t end[2] = { 0, 0 }, base;
	struct stat st0, st1;
	char why[1024];

	mqlog_options_init(&o);
	o.map_size = 32 * 1024;
	ck_assert_int_eq(mqlog_open(dir, &o, &db), 0);
	c.index_interval_bytes = 1;
	h_create(db, "m", &c);
	t = h_topic(db, "m");
	ck_assert_int_eq(stat(fx_path("%s/meta/data.mdb", dir), &st0), 0);
	for (int i = 0; i < 4000; i++) {
		uint32_t p = (uint32_t)i % 2;
		ck_assert_int_eq(bt_append(t, SEED, p, end[p], 1, 60,
					   MQLOG_SYNC_DEFAULT, &base),
				 0);
		end[p]++;
		if (i % 500 == 499)
			ck_assert_int_eq(mqlog_topic_sync(t), 0);
	}
	ck_assert_int_eq(mqlog_topic_sync(t), 0);
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_recover(db, NULL, NULL), 0);
	mqlog_close(db);
	ck_assert_int_eq(stat(fx_path("%s/meta/data.mdb", dir), &st1), 0);
	ck_assert_int_gt(st1.st_size, 32 * 1024);

	ck_assert_int_eq(mqlog_open(dir, &o, &db), 0);
	t = h_topic(db, "m");
	for (uint32_t p = 0; p < 2; p++) {
		struct bt_expect e = { SEED, 60, end[p], 0, 7, true };
		struct bt_seen s;
		ck_assert_msg(bt_check_partition(t, p, &e, &s, why,
						 sizeof why) == 0,
			      "%s", why);
	}
	ck_assert_msg(bt_verify(db, NULL, why, sizeof why) == 0, "%s", why);
	mqlog_topic_close(t);
	mqlog_close(db);
	fx_rmtree(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("faults");
	SRunner *sr;
	int nf;

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_faults, 0, IO_OP_COUNT_);
	tcase_add_test(tc, test_map_full);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	/* The totals add up across the ops. */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
