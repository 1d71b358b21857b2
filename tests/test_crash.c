/*
 * test_crash.c - kill -9 at random moments and at every named crash point,
 * then recover and check that nothing acknowledged was lost.
 *
 * A child process appends generated records (battery.h) with sync ALWAYS to
 * three partitions: two of topic "a" (unlimited) and one of topic "r"
 * (max_messages 40, DROP_OLDEST, small segments, so that retention deletes
 * segments all the time).  After each append returns it reports the base
 * offset, the count and a hash of the payloads through a pipe; the parent
 * kills it with SIGKILL:
 *
 *   - at a random moment (during recovery, appends, rolls, syncs ...), or
 *   - white-box: the child arms one of the engine's crash points
 *     (io_crash_arm) for its Nth hit, and the engine kills itself there.
 *
 * After every kill the parent checks the directory: every acknowledged
 * record is there with its exact bytes (records retention dropped aside),
 * offsets are dense, every record read back is exactly what was written at
 * that offset (acknowledged or not), seeks by offset and by time land
 * exactly, a restarted writer never reuses an acknowledged offset, and
 * mqlog_verify is clean.  Every other kill the next child recovers the
 * directory itself (the writer's own recovery path), otherwise the parent
 * does (a reader's).
 *
 * Default run: 600 kills (150 under sanitizers), about 15 seconds, then
 * 120 kills (40) of a producing and consuming group member, about 3
 * seconds (test_kill9_group, below).  "--soak" runs for MQLOG_SOAK_SECONDS
 * seconds (default 600, 0: until stopped), and a quarter of that for the
 * group, with fresh directories as it goes.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "battery.h"
#include "internal.h"

#define NPART	    3	/* a/0, a/1, r/0 */
#define RETAIN	    40	/* max_messages of topic "r" */
#define VMAX	    300 /* value bound */
#define SEED	    7	/* generator seed */
#define RESET_EVERY 30	/* kills before a fresh directory */

static const char *const topic_of[NPART] = { "a", "a", "r" };
static const uint32_t part_of[NPART] = { 0, 1, 0 };

/* What a child says through the pipe.  Under PIPE_BUF: written whole. */
struct msg {
	uint32_t kind; /* MSG_* */
	uint32_t slot; /* partition slot 0..NPART-1 */
	uint64_t base; /* ACK: base offset; START: end after recovery */
	uint64_t n;    /* ACK: records */
	uint64_t hash; /* ACK: hash of the payloads */
};

enum {
	MSG_START = 1,
	MSG_ACK = 2,
	MSG_ERROR = 3
};

/* The crash points of the engine and how often each is hit per append
 * (to spread the Nth hit over a child's life). */
static const struct {
	const char *name;
	unsigned spread;
} points[] = {
	{ "append.before_write", 40 },
	{ "append.after_write", 40 },
	{ "append.after_publish", 40 },
	{ "sync.before", 40 },
	{ "sync.after", 40 },
	{ "roll.after_create", 6 },
	{ "roll.after_publish", 6 },
	{ "index.before_flush", 6 },
	{ "retention.after_persist", 4 },
	{ "retention.after_unlink", 4 },
};
#define NPOINTS (sizeof points / sizeof points[0])

/* Totals for the report. */
static struct {
	unsigned long kills, random_kills, point_kills[NPOINTS];
	unsigned long point_missed[NPOINTS]; /* the point did not fire in 3 s */
	unsigned long acks, records, checks, lives_no_ack, dirs;
} tot;

static uint64_t rng = 0x9E3779B97F4A7C15ull;

/* Each slot has its own generator seed (two slots share partition 0). */
static uint32_t seed_of(unsigned slot)
{
	return SEED * 16 + slot;
}

static uint64_t slot_hash(unsigned slot, uint64_t base, uint64_t n)
{
	uint64_t h = 0;
	for (uint64_t o = base; o < base + n; o++) {
		uint64_t ph =
			bt_payload_hash(seed_of(slot), part_of[slot], o, VMAX);
		h = bt_fnv(&ph, sizeof ph, h);
	}
	return h;
}

static void send_msg(int fd, const struct msg *m)
{
	if (write(fd, m, sizeof *m) != (ssize_t)sizeof *m)
		_exit(5);
}

/* ------------------------------------------------------------------------ */
/* The child                                                                */
/* ------------------------------------------------------------------------ */

static void child(const char *dir, int wfd, int point, unsigned long nth,
		  uint64_t seed)
{
	mqlog *db = NULL;
	mqlog_topic *t[2] = { NULL, NULL };
	uint64_t end[NPART];
	int rc;

	if (point >= 0)
		io_crash_arm(points[point].name, nth);
	rc = mqlog_open(dir, NULL, &db);
	if (rc == 0)
		rc = mqlog_topic_open(db, "a", &t[0]);
	if (rc == 0)
		rc = mqlog_topic_open(db, "r", &t[1]);
	for (unsigned s = 0; rc == 0 && s < NPART; s++) {
		mqlog_partition_info info;
		rc = mqlog_partition_stat(t[s / 2], part_of[s], &info);
		end[s] = info.end_offset;
		if (rc == 0)
			send_msg(wfd,
				 &(struct msg){ MSG_START, s, end[s], 0, 0 });
	}
	if (rc) {
		fprintf(stderr, "crash child: open: %s\n", mqlog_errmsg(NULL));
		send_msg(wfd, &(struct msg){ MSG_ERROR, 0, 0, 0, 0 });
		_exit(2);
	}
	for (uint64_t i = 0;; i++) {
		unsigned s = (unsigned)(bt_mix(seed + i) % NPART);
		uint64_t n = 1 + bt_mix(seed ^ i) % 4, base = 0;
		rc = bt_append(t[s / 2], seed_of(s), part_of[s], end[s], n,
			       VMAX, MQLOG_SYNC_ALWAYS, &base);
		if (rc || base != end[s]) {
			fprintf(stderr,
				"crash child: append to %s/%u at %" PRIu64
				": %s (base %" PRIu64 "): %s\n",
				topic_of[s], part_of[s], end[s],
				mqlog_errname(rc), base, mqlog_errmsg(NULL));
			send_msg(wfd, &(struct msg){ MSG_ERROR, s, 0, 0, 0 });
			_exit(2);
		}
		send_msg(wfd, &(struct msg){ MSG_ACK, s, base, n,
					     slot_hash(s, base, n) });
		end[s] += n;
	}
}

/* ------------------------------------------------------------------------ */
/* The parent                                                               */
/* ------------------------------------------------------------------------ */

struct state {
	char *dir;	       /* current data directory */
	uint64_t acked[NPART]; /* acknowledged end per slot */
	unsigned kills_here;   /* kills in this directory */
};

static void fresh_dir(struct state *s)
{
	mqlog *db;
	mqlog_topic_config a = h_cfg(2, 8192, MQLOG_SYNC_ALWAYS);
	mqlog_topic_config r = h_cfg(1, 4096, MQLOG_SYNC_ALWAYS);

	if (s->dir) {
		fx_rmtree(s->dir);
		free(s->dir);
	}
	s->dir = fx_tmpdir();
	ck_assert_ptr_nonnull(s->dir);
	memset(s->acked, 0, sizeof s->acked);
	s->kills_here = 0;
	a.index_interval_bytes = 256;
	r.index_interval_bytes = 700;
	r.max_messages = RETAIN;
	db = h_open(s->dir);
	h_create(db, "a", &a);
	h_create(db, "r", &r);
	mqlog_close(db);
	tot.dirs++;
}

/* Open the directory, check every partition and verify. */
static void check_dir(struct state *s, const char *what)
{
	mqlog *db = h_open(s->dir);
	mqlog_topic *t[2] = { h_topic(db, "a"), h_topic(db, "r") };
	char why[1024];

	for (unsigned k = 0; k < NPART; k++) {
		struct bt_expect e = {
			seed_of(k), VMAX, s->acked[k], 0, 0, true
		};
		struct bt_seen seen = { 0, 0, 0 };
		mqlog_partition_info info = h_info(t[k / 2], part_of[k]);
		uint64_t n = s->acked[k] > info.start_offset ?
				     s->acked[k] - info.start_offset :
				     0;
		/* At most ~150 seeks per partition and check. */
		e.seek_stride = (unsigned)(n / 150 + 1);
		/* Sync ALWAYS is always on here, so nothing ever needs a time
		 * lookup past the acknowledged end. */
		if (k == 2 && info.end_offset > RETAIN)
			e.max_start = info.end_offset - RETAIN + 4;
		ck_assert_msg(bt_check_partition(t[k / 2], part_of[k], &e,
						 &seen, why, sizeof why) == 0,
			      "after %s (kill %lu, dir %s): %s", what,
			      tot.kills, s->dir, why);
		if (k == 2 && seen.end > RETAIN)
			ck_assert_msg(seen.end - seen.start <= RETAIN,
				      "r/0 keeps %" PRIu64 " records, limit %d",
				      seen.end - seen.start, RETAIN);
	}
	ck_assert_msg(bt_verify(db, NULL, why, sizeof why) == 0,
		      "after %s (kill %lu, dir %s): %s", what, tot.kills,
		      s->dir, why);
	mqlog_topic_close(t[0]);
	mqlog_topic_close(t[1]);
	mqlog_close(db);
	tot.checks++;
}

/* Read what the child said until the pipe closes. */
static void drain(struct state *s, int rfd, const char *what, bool *errored)
{
	struct msg m;
	ssize_t k;
	bool acked = false;

	*errored = false;
	while ((k = read(rfd, &m, sizeof m)) == (ssize_t)sizeof m) {
		ck_assert_uint_lt(m.slot, NPART);
		switch (m.kind) {
		case MSG_START:
			/* The child's own recovery found every acked record. */
			ck_assert_msg(m.base >= s->acked[m.slot],
				      "%s: child recovered %s/%u to %" PRIu64
				      ", %" PRIu64 " were acknowledged",
				      what, topic_of[m.slot], part_of[m.slot],
				      m.base, s->acked[m.slot]);
			break;
		case MSG_ACK:
			ck_assert_msg(m.base >= s->acked[m.slot],
				      "%s: offset %" PRIu64 " of %s/%u was "
				      "acknowledged twice",
				      what, m.base, topic_of[m.slot],
				      part_of[m.slot]);
			ck_assert_msg(m.hash == slot_hash(m.slot, m.base, m.n),
				      "%s: payload hash of %s/%u@%" PRIu64,
				      what, topic_of[m.slot], part_of[m.slot],
				      m.base);
			s->acked[m.slot] = m.base + m.n;
			tot.acks++;
			tot.records += m.n;
			acked = true;
			break;
		default:
			*errored = true;
			break;
		}
	}
	ck_assert_int_ge(k, 0);
	if (!acked)
		tot.lives_no_ack++;
}

/*
 * One life: start a child (armed at @point's Nth hit, or not when @point
 * is -1), kill it after @delay_us (or let the crash point kill it), and
 * check what it left.
 */
static void one_life(struct state *s, int point, unsigned long nth,
		     unsigned delay_us)
{
	int fds[2], status = 0;
	pid_t pid;
	bool errored;
	char what[160];

	if (!s->dir || s->kills_here >= RESET_EVERY)
		fresh_dir(s);
	ck_assert_int_eq(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
		close(fds[0]);
		child(s->dir, fds[1], point, nth, h_rand(&rng));
		_exit(0);
	}
	close(fds[1]);
	if (point < 0) {
		struct timespec ts = { 0, (long)delay_us * 1000L };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		snprintf(what, sizeof what, "a random kill after %u us",
			 delay_us);
	} else {
		/* The point kills the child; if its life runs long (the point
		 * is rare), a plain kill ends it. */
		snprintf(what, sizeof what, "a crash at %s (hit %lu)",
			 points[point].name, nth);
		for (int waited = 0; waited < 3000; waited += 5) {
			if (waitpid(pid, &status, WNOHANG) == pid)
				goto reaped;
			h_sleep_ms(5);
		}
		kill(pid, SIGKILL);
		tot.point_missed[point]++;
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
reaped:
	drain(s, fds[0], what, &errored);
	close(fds[0]);
	ck_assert_msg(!errored, "%s: the child failed (see its stderr)", what);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "%s: child ended with status %#x", what, status);
	tot.kills++;
	s->kills_here++;
	if (point < 0)
		tot.random_kills++;
	else
		tot.point_kills[point]++;
	/* Half the time the next child recovers the directory itself. */
	if (tot.kills % 2 == 0 || s->kills_here >= RESET_EVERY)
		check_dir(s, what);
}

static double now_s(void)
{
	return h_mono_ms() / 1000.0;
}

static void run(double seconds, unsigned long max_kills)
{
	struct state s = { NULL, { 0 }, 0 };
	double t0 = now_s();
	unsigned long i;

	for (i = 0; i < max_kills || max_kills == 0; i++) {
		if (seconds > 0 && now_s() - t0 >= seconds)
			break;
		/* Round robin: each crash point in turn, then 5 random kills.
		 */
		unsigned k = (unsigned)(i % (NPOINTS + 5));
		if (k >= NPOINTS) {
			one_life(&s, -1, 0, (unsigned)(h_rand(&rng) % 40000));
		} else {
			unsigned long nth = 1 + h_rand(&rng) % points[k].spread;
			one_life(&s, (int)k, nth, 0);
		}
	}
	if (s.dir) {
		check_dir(&s, "the last kill");
		fx_rmtree(s.dir);
		free(s.dir);
	}
}

static void report(double secs)
{
	printf("crash: %lu kills in %.1f s (%lu random, crash points:",
	       tot.kills, secs, tot.random_kills);
	for (unsigned k = 0; k < NPOINTS; k++)
		printf(" %s %lu", points[k].name,
		       tot.point_kills[k] - tot.point_missed[k]);
	printf("; not reached:");
	for (unsigned k = 0; k < NPOINTS; k++)
		if (tot.point_missed[k])
			printf(" %s %lu", points[k].name, tot.point_missed[k]);
	printf("); %lu appends (%lu records) acknowledged, %lu lives ended "
	       "before any acknowledgement, %lu directory checks, %lu "
	       "directories\n",
	       tot.acks, tot.records, tot.lives_no_ack, tot.checks, tot.dirs);
}

/* ------------------------------------------------------------------------ */
/* kill -9 inside the group offset commit                                   */
/* ------------------------------------------------------------------------ */

/*
 * A child appends with sync ALWAYS to the two partitions of topic "g" and
 * consumes them as the only member of group "cg" (manual commits after
 * every poll that returned records).  It reports every acknowledged append,
 * every run of records it was handed (checked byte for byte in the child)
 * and every commit once mqlog_consumer_commit returned.  The parent kills
 * it inside the commit (commit.before: written in the LMDB transaction, not
 * committed; commit.after: committed and synced, not returned) or at a
 * random moment, then checks: every acknowledged record is there; each
 * committed offset is at most the log end and at most what was delivered,
 * at least the last acknowledged commit, and exactly it after a kill at
 * commit.before; and the next life's first record of each partition is the
 * committed offset (at-least-once: nothing skipped, resumed exactly there).
 */
#define GPARTS 2
#define GSEED  (SEED * 16 + 8)

enum {
	MSG_DELIV = 4,
	MSG_COMMIT = 5
};

static const char *const gpoints[] = { "commit.before", "commit.after" };
#define NGPOINTS 2

static struct {
	unsigned long kills, random_kills, point_kills[NGPOINTS];
	unsigned long point_missed[NGPOINTS];
	unsigned long acks, delivered, commits, resumes, redelivered;
} gtot;

struct gstate {
	char *dir;
	uint64_t acked[GPARTS];	     /* acknowledged end */
	uint64_t commit_ack[GPARTS]; /* last commit the child saw return */
	uint64_t deliv_max[GPARTS];  /* highest delivered end, all lives */
	uint64_t resume[GPARTS];     /* where the next life must start */
	bool resumed[GPARTS];	     /* this life delivered from p already */
	uint64_t deliv_end[GPARTS];  /* this life's delivered end */
};

static int gchild_poll(mqlog_consumer *c, int wfd)
{
	mqlog_record recs[32];
	size_t n = 0;
	uint64_t first[GPARTS], cnt[GPARTS] = { 0, 0 };
	char why[256];
	int rc = mqlog_consumer_poll(c, recs, 32, 5, &n);

	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		uint32_t p = recs[i].partition;
		if (p >= GPARTS || bt_check_rec(GSEED + p, p, VMAX, &recs[i],
						why, sizeof why) != 0) {
			fprintf(stderr, "group child: partition %u: %s\n", p,
				why);
			return MQLOG_ECORRUPT;
		}
		if (cnt[p] == 0)
			first[p] = recs[i].offset;
		else if (recs[i].offset != first[p] + cnt[p]) {
			fprintf(stderr,
				"group child: partition %u: offset %" PRIu64
				" after %" PRIu64 "\n",
				p, recs[i].offset, first[p] + cnt[p] - 1);
			return MQLOG_ECORRUPT;
		}
		cnt[p]++;
	}
	for (uint32_t p = 0; p < GPARTS; p++)
		if (cnt[p])
			send_msg(wfd, &(struct msg){ MSG_DELIV, p, first[p],
						     cnt[p], 0 });
	if (n == 0)
		return 0;
	rc = mqlog_consumer_commit(c);
	if (rc)
		return rc;
	for (uint32_t p = 0; p < GPARTS; p++) {
		uint64_t pos;
		if (mqlog_consumer_position(c, p, &pos) == 0)
			send_msg(wfd,
				 &(struct msg){ MSG_COMMIT, p, pos, 0, 0 });
	}
	return 0;
}

static void gchild(const char *dir, int wfd, int point, unsigned long nth,
		   uint64_t seed)
{
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	mqlog_consumer *c = NULL;
	mqlog_consumer_options o;
	uint64_t end[GPARTS];
	int rc;

	if (point >= 0)
		io_crash_arm(gpoints[point], nth);
	mqlog_consumer_options_init(&o);
	o.group = "cg";
	o.commit_mode = MQLOG_COMMIT_MANUAL;
	o.heartbeat_ms = 50;
	o.lease_ms = 1000;
	rc = mqlog_open(dir, NULL, &db);
	if (rc == 0)
		rc = mqlog_topic_open(db, "g", &t);
	for (uint32_t p = 0; rc == 0 && p < GPARTS; p++) {
		mqlog_partition_info info;
		rc = mqlog_partition_stat(t, p, &info);
		end[p] = info.end_offset;
		if (rc == 0)
			send_msg(wfd,
				 &(struct msg){ MSG_START, p, end[p], 0, 0 });
	}
	if (rc == 0)
		rc = mqlog_consumer_open(t, &o, &c);
	if (rc) {
		fprintf(stderr, "group child: open: %s\n", mqlog_errmsg(NULL));
		send_msg(wfd, &(struct msg){ MSG_ERROR, 0, 0, 0, 0 });
		_exit(2);
	}
	for (uint64_t i = 0;; i++) {
		uint32_t p = (uint32_t)(bt_mix(seed + i) % GPARTS);
		uint64_t n = 1 + bt_mix(seed ^ i) % 4, base = 0;
		rc = bt_append(t, GSEED + p, p, end[p], n, VMAX,
			       MQLOG_SYNC_ALWAYS, &base);
		if (rc || base != end[p]) {
			fprintf(stderr, "group child: append: %s: %s\n",
				mqlog_errname(rc), mqlog_errmsg(NULL));
			send_msg(wfd, &(struct msg){ MSG_ERROR, p, 0, 0, 0 });
			_exit(2);
		}
		send_msg(wfd, &(struct msg){ MSG_ACK, p, base, n, 0 });
		end[p] += n;
		rc = gchild_poll(c, wfd);
		if (rc) {
			fprintf(stderr, "group child: poll/commit: %s: %s\n",
				mqlog_errname(rc), mqlog_errmsg(NULL));
			send_msg(wfd, &(struct msg){ MSG_ERROR, 0, 0, 0, 0 });
			_exit(2);
		}
	}
}

static void gfresh(struct gstate *s)
{
	mqlog *db;
	mqlog_topic_config g = h_cfg(GPARTS, 8192, MQLOG_SYNC_ALWAYS);

	if (s->dir) {
		fx_rmtree(s->dir);
		free(s->dir);
	}
	memset(s, 0, sizeof *s);
	s->dir = fx_tmpdir();
	ck_assert_ptr_nonnull(s->dir);
	g.index_interval_bytes = 512;
	db = h_open(s->dir);
	h_create(db, "g", &g);
	mqlog_close(db);
}

static void gdrain(struct gstate *s, int rfd, const char *what, bool *errored)
{
	struct msg m;
	ssize_t k;

	*errored = false;
	while ((k = read(rfd, &m, sizeof m)) == (ssize_t)sizeof m) {
		if (m.kind == MSG_ERROR) {
			*errored = true;
			continue;
		}
		ck_assert_uint_lt(m.slot, GPARTS);
		switch (m.kind) {
		case MSG_START:
			ck_assert_uint_ge(m.base, s->acked[m.slot]);
			break;
		case MSG_ACK:
			ck_assert_msg(m.base >= s->acked[m.slot],
				      "%s: g/%u@%" PRIu64 " acknowledged twice",
				      what, m.slot, m.base);
			s->acked[m.slot] = m.base + m.n;
			gtot.acks++;
			break;
		case MSG_DELIV:
			if (!s->resumed[m.slot]) {
				/* The first record of the life: exactly the
				 * committed offset (at-least-once resume). */
				ck_assert_msg(m.base == s->resume[m.slot],
					      "%s: the restarted member began "
					      "g/%u at %" PRIu64
					      ", committed %" PRIu64,
					      what, m.slot, m.base,
					      s->resume[m.slot]);
				s->resumed[m.slot] = true;
				gtot.resumes++;
				if (m.base < s->deliv_max[m.slot])
					gtot.redelivered +=
						s->deliv_max[m.slot] - m.base;
			} else {
				ck_assert_msg(m.base == s->deliv_end[m.slot],
					      "%s: g/%u handed out %" PRIu64
					      " after %" PRIu64,
					      what, m.slot, m.base,
					      s->deliv_end[m.slot]);
			}
			s->deliv_end[m.slot] = m.base + m.n;
			if (s->deliv_end[m.slot] > s->deliv_max[m.slot])
				s->deliv_max[m.slot] = s->deliv_end[m.slot];
			gtot.delivered += m.n;
			break;
		case MSG_COMMIT:
			ck_assert_uint_ge(m.base, s->commit_ack[m.slot]);
			s->commit_ack[m.slot] = m.base;
			gtot.commits++;
			break;
		default:
			ck_abort_msg("%s: message kind %u", what, m.kind);
		}
	}
	ck_assert_int_ge(k, 0);
}

/* After a kill: the records, then the group's committed offsets. */
static void gcheck(struct gstate *s, int point, const char *what)
{
	mqlog *db = h_open(s->dir);
	mqlog_topic *t = h_topic(db, "g");
	mqlog_group_info *gi = NULL;
	char why[1024];
	int rc;

	for (uint32_t p = 0; p < GPARTS; p++) {
		struct bt_expect e = {
			GSEED + p, VMAX, s->acked[p], 0, 0, true
		};
		struct bt_seen seen;
		e.seek_stride = (unsigned)(s->acked[p] / 100 + 1);
		ck_assert_msg(bt_check_partition(t, p, &e, &seen, why,
						 sizeof why) == 0,
			      "after %s (group kill %lu, dir %s): %s", what,
			      gtot.kills, s->dir, why);
	}
	rc = mqlog_group_describe(db, "cg", "g", &gi);
	if (rc == MQLOG_ENOENT) {
		/* Killed before the first join committed. */
		for (uint32_t p = 0; p < GPARTS; p++)
			ck_assert_uint_eq(s->commit_ack[p], 0);
	} else {
		ck_assert_msg(rc == 0, "describe: %s", mqlog_errmsg(NULL));
		ck_assert_uint_eq(gi->partition_count, GPARTS);
		for (uint32_t p = 0; p < GPARTS; p++) {
			const mqlog_group_partition_info *gp =
				&gi->partitions[p];
			uint64_t c = gp->has_committed ? gp->committed : 0;
			ck_assert_msg(c <= gp->end_offset,
				      "%s: g/%u committed %" PRIu64
				      " past the end %" PRIu64,
				      what, p, c, gp->end_offset);
			ck_assert_msg(
				c >= s->commit_ack[p] && c <= s->deliv_max[p],
				"%s: g/%u committed %" PRIu64 ", the "
				"child saw %" PRIu64 " commit and %" PRIu64
				" delivered",
				what, p, c, s->commit_ack[p], s->deliv_max[p]);
			/* Killed inside the transaction: it never happened. */
			if (point == 0)
				ck_assert_msg(c == s->commit_ack[p],
					      "%s: g/%u committed %" PRIu64
					      ", last acknowledged %" PRIu64,
					      what, p, c, s->commit_ack[p]);
			s->resume[p] = c;
			s->commit_ack[p] = c;
		}
		mqlog_group_info_free(gi, 1);
	}
	ck_assert_msg(bt_verify(db, NULL, why, sizeof why) == 0, "%s: %s", what,
		      why);
	mqlog_topic_close(t);
	mqlog_close(db);
}

static void glife(struct gstate *s, int point, unsigned long nth,
		  unsigned delay_us)
{
	int fds[2], status = 0;
	pid_t pid;
	bool errored;
	char what[160];

	if (!s->dir || gtot.kills % RESET_EVERY == 0)
		gfresh(s);
	for (uint32_t p = 0; p < GPARTS; p++)
		s->resumed[p] = false;
	ck_assert_int_eq(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(fds[0]);
		gchild(s->dir, fds[1], point, nth, h_rand(&rng));
		_exit(0);
	}
	close(fds[1]);
	if (point < 0) {
		struct timespec ts = { 0, (long)delay_us * 1000L };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		snprintf(what, sizeof what, "a random kill after %u us",
			 delay_us);
	} else {
		snprintf(what, sizeof what, "a crash at %s (hit %lu)",
			 gpoints[point], nth);
		for (int waited = 0; waited < 3000; waited += 5) {
			if (waitpid(pid, &status, WNOHANG) == pid)
				goto reaped;
			h_sleep_ms(5);
		}
		kill(pid, SIGKILL);
		gtot.point_missed[point]++;
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
reaped:
	gdrain(s, fds[0], what, &errored);
	close(fds[0]);
	ck_assert_msg(!errored, "%s: the child failed (see its stderr)", what);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "%s: child ended with status %#x", what, status);
	gtot.kills++;
	if (point < 0)
		gtot.random_kills++;
	else
		gtot.point_kills[point]++;
	/* The missed-point fallback kill is random: no exact check. */
	gcheck(s, point >= 0 && gtot.point_missed[point] == 0 ? point : -1,
	       what);
}

static void grun(double seconds, unsigned long max_kills)
{
	struct gstate s;
	double t0 = now_s();

	memset(&s, 0, sizeof s);
	for (unsigned long i = 0; i < max_kills || max_kills == 0; i++) {
		if (seconds > 0 && now_s() - t0 >= seconds)
			break;
		unsigned k = (unsigned)(i % 4); /* 2 points, 2 random */
		if (k >= NGPOINTS)
			glife(&s, -1, 0,
			      2000 + (unsigned)(h_rand(&rng) % 30000));
		else
			glife(&s, (int)k, 1 + h_rand(&rng) % 30, 0);
	}
	if (s.dir) {
		fx_rmtree(s.dir);
		free(s.dir);
	}
}

static void greport(double secs)
{
	printf("crash (group): %lu kills in %.1f s (%lu random, commit.before "
	       "%lu, commit.after %lu, not reached %lu/%lu); %lu appends, "
	       "%lu records handed out, %lu commits, %lu resumes (%lu records "
	       "handed out again)\n",
	       gtot.kills, secs, gtot.random_kills,
	       gtot.point_kills[0] - gtot.point_missed[0],
	       gtot.point_kills[1] - gtot.point_missed[1], gtot.point_missed[0],
	       gtot.point_missed[1], gtot.acks, gtot.delivered, gtot.commits,
	       gtot.resumes, gtot.redelivered);
}

static bool soak;

START_TEST(test_kill9)
{
	double t0 = now_s();

	rng = bt_env_ul("MQLOG_CRASH_SEED",
			soak ? (unsigned long)time(NULL) : 1);
	rng = bt_mix(rng) | 1;
	printf("crash: seed %lu (MQLOG_CRASH_SEED)\n",
	       bt_env_ul("MQLOG_CRASH_SEED",
			 soak ? (unsigned long)time(NULL) : 1));
	if (soak) {
		run((double)bt_env_ul("MQLOG_SOAK_SECONDS", 600), 0);
	} else {
		/* 40 rounds of the 10 crash points and 5 random kills: 600
		 * kills. */
		unsigned long kills = BT_SANITIZED ? 150 : 600;
		run(0, bt_env_ul("MQLOG_CRASH_KILLS", kills));
		ck_assert_uint_ge(tot.kills,
				  bt_env_ul("MQLOG_CRASH_KILLS", kills));
		/* Every crash point fired (rather than being cut short by the
		 * fallback kill) in most of its lives. */
		for (unsigned k = 0; k < NPOINTS; k++)
			ck_assert_msg(tot.point_missed[k] * 4 <=
					      tot.point_kills[k],
				      "crash point %s fired in only %lu of %lu "
				      "lives",
				      points[k].name,
				      tot.point_kills[k] - tot.point_missed[k],
				      tot.point_kills[k]);
	}
	report(now_s() - t0);
}
END_TEST

START_TEST(test_kill9_group)
{
	double t0 = now_s();

	if (soak) {
		grun((double)bt_env_ul("MQLOG_SOAK_SECONDS", 600) / 4, 0);
	} else {
		unsigned long kills = BT_SANITIZED ? 40 : 120;
		kills = bt_env_ul("MQLOG_CRASH_GROUP_KILLS", kills);
		grun(0, kills);
		ck_assert_uint_ge(gtot.kills, kills);
		for (unsigned k = 0; k < NGPOINTS; k++)
			ck_assert_msg(
				gtot.point_missed[k] * 4 <= gtot.point_kills[k],
				"crash point %s fired in only %lu of %lu "
				"lives",
				gpoints[k],
				gtot.point_kills[k] - gtot.point_missed[k],
				gtot.point_kills[k]);
		/* The restarts did resume from commits. */
		ck_assert_uint_gt(gtot.resumes, kills / 2);
	}
	greport(now_s() - t0);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("kill9");
	SRunner *sr;
	int nf;

	soak = argc > 1 && !strcmp(argv[1], "--soak");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	/* Soak: as long as asked (0: for good), plus room for the checks. */
	tcase_set_timeout(tc, soak ? (bt_env_ul("MQLOG_SOAK_SECONDS", 600) ?
					      (double)bt_env_ul(
						      "MQLOG_SOAK_SECONDS",
						      600) * 1.25 +
						      300 :
					      1e9) :
				     600);
	tcase_add_test(tc, test_kill9);
	tcase_add_test(tc, test_kill9_group);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	/* The totals and the report live in this process. */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
