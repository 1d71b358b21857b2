/*
 * test_group.c - consumer groups across processes: members in separate
 * processes share the partitions with every record delivered once; a
 * kill -9 of members loses nothing (duplicates only after a victim's last
 * commit); two groups both see everything; per-key order in each member;
 * a blocked poll wakes within milliseconds of an append from another
 * process; rebalances after a member leaves or dies take at most two
 * heartbeats; and `mqlog-tool consume --group` does the same.
 *
 * Every child forks before the parent opens the directory, opens it
 * itself, and leaves with _exit(), so that no process uses a handle it
 * inherited.  Members write what they consume to a file with write(2)
 * before their next poll (which commits it), so a file holds at least
 * everything its member committed.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "helpers.h"

#define HB_MS  100
#define NPARTS 6
#define NKEYS  24

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void create_topic(uint32_t parts)
{
	mqlog *db = h_open(fx_dir);
	mqlog_topic_config c = h_cfg(parts, 1u << 20, MQLOG_SYNC_NONE);
	h_create(db, "t", &c);
	mqlog_close(db);
}

static int wait_child(pid_t pid)
{
	int status = 0;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const char *done_path(void)
{
	return fx_path("%s.done", fx_dir);
}

/* Append record @seq of every key ("k<key>:<seq>", keyed "k<key>"). */
static void produce_round(mqlog_topic *t, int seq)
{
	for (int k = 0; k < NKEYS; k++) {
		char key[16], val[32];
		mqlog_msg m;

		snprintf(key, sizeof key, "k%d", k);
		snprintf(val, sizeof val, "k%d:%d", k, seq);
		memset(&m, 0, sizeof m);
		m.key.data = key;
		m.key.len = strlen(key);
		m.value.data = val;
		m.value.len = strlen(val);
		m.timestamp = MQLOG_TIMESTAMP_NOW;
		ck_assert_int_eq(
			mqlog_append(t,
				     mqlog_partition_for_key(
					     key, strlen(key),
					     mqlog_topic_partitions(t)),
				     &m, 1, MQLOG_SYNC_DEFAULT, NULL),
			0);
	}
}

/* What a member process runs. */
struct member_cfg {
	const char *group;  /* group name */
	const char *out;    /* output file */
	int ready_fd;	    /* gets the member id once joined */
	int commit_mode;    /* enum mqlog_commit_mode */
	int strategy;	    /* enum mqlog_assign_strategy */
	uint32_t commit_ms; /* auto_commit_interval_ms */
};

static volatile sig_atomic_t child_stop;

static void on_term(int sig)
{
	(void)sig;
	child_stop = 1;
}

/*
 * Child body: join, then poll; every record becomes a line
 * "PARTITION OFFSET VALUE" written before the next poll.  Leaves (closing
 * the consumer) on SIGTERM, or once the done file exists and nothing came
 * for 300 ms.  Exit status: 0, or where it failed.
 */
static void member_child(const struct member_cfg *mc)
{
	mqlog_consumer_options o;
	mqlog_consumer *c = NULL;
	mqlog_topic *t = NULL;
	mqlog *db = NULL;
	mqlog_record recs[128];
	struct sigaction sa;
	char *buf = malloc(128 * 96);
	double idle_since = h_mono_ms(), deadline = h_mono_ms() + 40000;
	uint64_t id;
	int fd;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	fd = open(mc->out, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (fd < 0 || !buf)
		_exit(10);
	if (mqlog_open(fx_dir, NULL, &db) != 0)
		_exit(11);
	if (mqlog_topic_open(db, "t", &t) != 0)
		_exit(12);
	mqlog_consumer_options_init(&o);
	o.group = mc->group;
	o.heartbeat_ms = HB_MS;
	o.lease_ms = 20 * HB_MS;
	o.auto_commit_interval_ms = mc->commit_ms;
	o.commit_mode = mc->commit_mode;
	o.strategy = mc->strategy;
	if (mqlog_consumer_open(t, &o, &c) != 0)
		_exit(13);
	id = mqlog_consumer_member_id(c);
	if (write(mc->ready_fd, &id, sizeof id) != (ssize_t)sizeof id)
		_exit(14);
	close(mc->ready_fd);
	while (!child_stop) {
		size_t n = 0, len = 0;

		if (mqlog_consumer_poll(c, recs, 128, 20, &n) != 0)
			_exit(15);
		for (size_t i = 0; i < n; i++)
			len += (size_t)snprintf(
				buf + len, 96, "%u %" PRIu64 " %.*s\n",
				recs[i].partition, recs[i].offset,
				(int)recs[i].value.len,
				(const char *)recs[i].value.data);
		if (len && write(fd, buf, len) != (ssize_t)len)
			_exit(16);
		if (n)
			idle_since = h_mono_ms();
		else if (access(done_path(), F_OK) == 0 &&
			 h_mono_ms() - idle_since > 300)
			break;
		if (h_mono_ms() > deadline)
			_exit(17);
	}
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
	close(fd);
	free(buf);
	_exit(0);
}

struct member {
	pid_t pid;	/* process */
	uint64_t id;	/* member id it reported */
	char out[4096]; /* its output file */
	int killed;	/* killed with SIGKILL */
};

/* Fork a member; returns once it has joined. */
static void start_member_ms(struct member *m, const char *group, int idx,
			    int commit_mode, int strategy, uint32_t commit_ms)
{
	struct member_cfg mc = { .group = group,
				 .commit_mode = commit_mode,
				 .strategy = strategy,
				 .commit_ms = commit_ms };
	int fds[2];

	snprintf(m->out, sizeof m->out, "%s.%s.%d.out", fx_dir, group, idx);
	mc.out = m->out;
	ck_assert_int_eq(pipe(fds), 0);
	fflush(NULL);
	m->pid = fork();
	ck_assert_int_ge(m->pid, 0);
	if (m->pid == 0) {
		close(fds[0]);
		mc.ready_fd = fds[1];
		member_child(&mc);
	}
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], &m->id, sizeof m->id),
			 (ssize_t)sizeof m->id);
	close(fds[0]);
	m->killed = 0;
}

static void start_member(struct member *m, const char *group, int idx,
			 int commit_mode, int strategy)
{
	start_member_ms(m, group, idx, commit_mode, strategy, 0);
}

/* One consumed record, parsed from an output line. */
struct line {
	uint32_t part; /* partition */
	uint64_t off;  /* offset */
	int key, seq;  /* from the value */
};

static size_t read_lines(const char *path, struct line **out)
{
	size_t len = 0, n = 0, cap = 1024;
	unsigned char *data = h_slurp(path, &len);
	struct line *ls = malloc(cap * sizeof *ls);
	char *p, *save = NULL;

	ck_assert_ptr_nonnull(ls);
	data[len] = '\0'; /* h_slurp leaves room for it */
	for (p = strtok_r((char *)data, "\n", &save); p;
	     p = strtok_r(NULL, "\n", &save)) {
		struct line l;
		ck_assert_msg(sscanf(p, "%u %" SCNu64 " k%d:%d", &l.part,
				     &l.off, &l.key, &l.seq) == 4,
			      "%s: bad line '%s'", path, p);
		if (n == cap) {
			cap *= 2;
			ls = realloc(ls, cap * sizeof *ls);
			ck_assert_ptr_nonnull(ls);
		}
		ls[n++] = l;
	}
	free(data);
	*out = ls;
	return n;
}

/*
 * Check the outputs of @n members against @rounds rounds of production:
 * every record at least once; per key, each member saw increasing
 * sequence numbers; duplicates only when @victims allows them, and then
 * only in a victim's output, as the tail of what it consumed from the
 * partition (what came after its last commit).  Returns the duplicates.
 */
static size_t check_outputs(struct member *ms, int n, int rounds, int victims)
{
	uint8_t(*seen)[NKEYS] = calloc((size_t)rounds, NKEYS);
	size_t dups = 0;

	ck_assert_ptr_nonnull(seen);
	for (int i = 0; i < n; i++) {
		struct line *ls;
		size_t cnt = read_lines(ms[i].out, &ls);
		int last[NKEYS];

		for (int k = 0; k < NKEYS; k++)
			last[k] = -1;
		for (size_t j = 0; j < cnt; j++) {
			ck_assert(ls[j].key >= 0 && ls[j].key < NKEYS);
			ck_assert(ls[j].seq >= 0 && ls[j].seq < rounds);
			/* A member never reads a record twice in one life,
			 * and a partition it gets back resumes past what it
			 * read: order holds per output. */
			ck_assert_msg(ls[j].seq > last[ls[j].key],
				      "member %d: k%d:%d after k%d:%d", i,
				      ls[j].key, ls[j].seq, ls[j].key,
				      last[ls[j].key]);
			last[ls[j].key] = ls[j].seq;
			seen[ls[j].seq][ls[j].key]++;
		}
		free(ls);
	}
	for (int s = 0; s < rounds; s++) {
		for (int k = 0; k < NKEYS; k++) {
			ck_assert_msg(seen[s][k] >= 1, "k%d:%d was lost", k, s);
			ck_assert_msg(seen[s][k] <= 2,
				      "k%d:%d consumed %d times", k, s,
				      seen[s][k]);
			if (seen[s][k] == 2) {
				ck_assert_msg(victims,
					      "k%d:%d consumed twice "
					      "without a crash",
					      k, s);
				dups++;
			}
		}
	}
	/* Duplicates belong to victims, as a suffix per partition. */
	if (dups) {
		for (int i = 0; i < n; i++) {
			struct line *ls;
			size_t cnt = read_lines(ms[i].out, &ls);
			uint64_t first_dup[NPARTS];

			for (int p = 0; p < NPARTS; p++)
				first_dup[p] = UINT64_MAX;
			for (size_t j = 0; j < cnt; j++) {
				if (seen[ls[j].seq][ls[j].key] != 2 ||
				    !ms[i].killed)
					continue;
				if (ls[j].off < first_dup[ls[j].part])
					first_dup[ls[j].part] = ls[j].off;
			}
			for (size_t j = 0; j < cnt && ms[i].killed; j++) {
				if (ls[j].off >= first_dup[ls[j].part])
					ck_assert_msg(
						seen[ls[j].seq][ls[j].key] == 2,
						"victim %d: partition %u offset "
						"%" PRIu64 " after its first "
						"replayed record was not "
						"replayed",
						i, ls[j].part, ls[j].off);
			}
			free(ls);
		}
	}
	free(seen);
	return dups;
}

/* Describe the group until every partition is owned by a live member and
 * none by @gone; returns the ms it took, or -1 after @limit_ms. */
static double wait_owned(mqlog *db, const char *group, uint64_t gone,
			 double limit_ms)
{
	double t0 = h_mono_ms();

	for (;;) {
		mqlog_group_info *g = NULL;
		int ok = 1;

		ck_assert_int_eq(mqlog_group_describe(db, group, "t", &g), 0);
		for (size_t p = 0; p < g->partition_count; p++)
			if (!g->partitions[p].owner ||
			    g->partitions[p].owner == gone)
				ok = 0;
		mqlog_group_info_free(g, 1);
		if (ok)
			return h_mono_ms() - t0;
		if (h_mono_ms() - t0 > limit_ms)
			return -1;
		h_sleep_ms(1);
	}
}

/*
 * Produce @rounds rounds into "t", pausing a little so that members
 * consume while records arrive.  Before rounds @at[0..nat) the directory
 * is closed and @hook(@arg, round) runs: it may fork (a child must not
 * inherit an open handle).
 */
static int pace = 25; /* rounds between two 3 ms pauses */

static void produce(int rounds, void (*hook)(void *, int), void *arg,
		    const int *at, int nat)
{
	mqlog *db = h_open(fx_dir);
	mqlog_topic *t = h_topic(db, "t");

	for (int s = 0; s < rounds; s++) {
		for (int i = 0; i < nat; i++) {
			if (at[i] != s)
				continue;
			mqlog_topic_close(t);
			mqlog_close(db);
			hook(arg, s);
			db = h_open(fx_dir);
			t = h_topic(db, "t");
		}
		produce_round(t, s);
		if (s % pace == pace - 1)
			h_sleep_ms(3);
	}
	mqlog_topic_close(t);
	mqlog_close(db);
}

static void finish(struct member *ms, int n)
{
	FILE *f = fopen(done_path(), "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	for (int i = 0; i < n; i++) {
		int st = wait_child(ms[i].pid);
		if (ms[i].killed)
			ck_assert_int_eq(st, 128 + SIGKILL);
		else
			ck_assert_msg(st == 0, "member %d exited %d", i, st);
	}
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

/* Three member processes over six partitions while records arrive: the
 * union of their outputs is every record once, each key in order. */
START_TEST(test_processes_share)
{
	struct member ms[3];

	create_topic(NPARTS);
	for (int i = 0; i < 3; i++)
		start_member(&ms[i], "g", i, MQLOG_COMMIT_AFTER,
			     MQLOG_ASSIGN_RANGE);
	produce(400, NULL, NULL, NULL, 0);
	finish(ms, 3);
	ck_assert_uint_eq(check_outputs(ms, 3, 400, 0), 0);
}
END_TEST

/* Members join one after another while records arrive (sticky): each
 * join rebalances, still every record exactly once. */
struct joiner {
	struct member *ms; /* members */
	int next;	   /* next to start */
};

static void join_later(void *arg, int seq)
{
	struct joiner *j = arg;

	(void)seq;
	start_member(&j->ms[j->next], "g", j->next, MQLOG_COMMIT_AFTER,
		     MQLOG_ASSIGN_STICKY);
	j->next++;
}

START_TEST(test_processes_join_midstream)
{
	struct member ms[3];
	struct joiner j = { ms, 1 };
	static const int at[] = { 100, 250 };

	create_topic(NPARTS);
	start_member(&ms[0], "g", 0, MQLOG_COMMIT_AFTER, MQLOG_ASSIGN_STICKY);
	produce(400, join_later, &j, at, 2);
	finish(ms, 3);
	ck_assert_uint_eq(check_outputs(ms, 3, 400, 0), 0);
}
END_TEST

/* Kill -9 two of four members mid-stream: nothing is lost, and the only
 * duplicates are what a victim consumed after its last commit.  The
 * victims' partitions are owned again within two heartbeats. */
struct killer {
	struct member *ms; /* members */
	double worst_ms;   /* slowest takeover */
};

static void kill_at(void *arg, int seq)
{
	struct killer *k = arg;
	int victim = seq == 120 ? 1 : 3;
	mqlog *db;
	double ms;

	ck_assert_int_eq(kill(k->ms[victim].pid, SIGKILL), 0);
	k->ms[victim].killed = 1;
	db = h_open(fx_dir);
	ms = wait_owned(db, "g", k->ms[victim].id, 5000);
	mqlog_close(db);
	ck_assert_msg(ms >= 0, "victim %d's partitions never taken over",
		      victim);
	if (ms > k->worst_ms)
		k->worst_ms = ms;
}

START_TEST(test_kill9_members)
{
	struct member ms[4];
	struct killer k = { ms, 0 };
	static const int at[] = { 120, 260 };
	size_t dups;

	create_topic(NPARTS);
	/* The victims (1 and 3) commit every 30 ms: they die with records
	 * consumed but not committed, which their successors replay. */
	for (int i = 0; i < 4; i++)
		start_member_ms(&ms[i], "g", i, MQLOG_COMMIT_AFTER,
				MQLOG_ASSIGN_RANGE, i % 2 ? 30 : 0);
	pace = 4;
	produce(400, kill_at, &k, at, 2);
	pace = 25;
	finish(ms, 4);
	dups = check_outputs(ms, 4, 400, 1);
	fprintf(stderr,
		"kill -9: %zu records replayed; takeover after %.1f ms "
		"(heartbeat %d ms)\n",
		dups, k.worst_ms, HB_MS);
	/* Two heartbeats, and a little for a loaded (sanitizer) machine. */
	ck_assert_msg(k.worst_ms <= 2 * HB_MS + 50, "takeover took %.1f ms",
		      k.worst_ms);
}
END_TEST

/* Two groups of two processes each: each group's union is everything. */
START_TEST(test_two_groups)
{
	struct member a[2], b[2];

	create_topic(NPARTS);
	for (int i = 0; i < 2; i++) {
		start_member(&a[i], "ga", i, MQLOG_COMMIT_AFTER,
			     MQLOG_ASSIGN_RANGE);
		start_member(&b[i], "gb", i, MQLOG_COMMIT_BEFORE,
			     MQLOG_ASSIGN_ROUND_ROBIN);
	}
	produce(200, NULL, NULL, NULL, 0);
	finish(a, 2);
	finish(b, 2);
	ck_assert_uint_eq(check_outputs(a, 2, 200, 0), 0);
	ck_assert_uint_eq(check_outputs(b, 2, 200, 0), 0);
}
END_TEST

/* A member that leaves cleanly hands its partitions over at once (its
 * close wakes the others), well within two heartbeats. */
START_TEST(test_leave_rebalance_time)
{
	struct member ms[2];
	mqlog *db;
	double took;

	create_topic(NPARTS);
	for (int i = 0; i < 2; i++)
		start_member(&ms[i], "g", i, MQLOG_COMMIT_AFTER,
			     MQLOG_ASSIGN_RANGE);
	db = h_open(fx_dir);
	ck_assert(wait_owned(db, "g", 0, 5000) >= 0);
	ck_assert_int_eq(kill(ms[0].pid, SIGTERM), 0);
	took = wait_owned(db, "g", ms[0].id, 5000);
	mqlog_close(db);
	fprintf(stderr, "clean leave: takeover after %.1f ms\n", took);
	ck_assert_msg(took >= 0 && took <= 2 * HB_MS, "takeover took %.1f ms",
		      took);
	finish(ms, 2);
}
END_TEST

/* A poll blocked in one process wakes within milliseconds of an append
 * made by another. */
START_TEST(test_cross_process_wake)
{
	enum {
		ROUNDS = 30
	};
	int ready[2], times[2];
	double lat[ROUNDS];
	pid_t pid;

	create_topic(4);
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(times), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint32_t all[4] = { 0, 1, 2, 3 };
		mqlog_consumer *c = NULL;
		mqlog_topic *t = NULL;
		mqlog *db = NULL;
		mqlog_record rec;
		char one = 1;

		if (mqlog_open(fx_dir, NULL, &db) != 0 ||
		    mqlog_topic_open(db, "t", &t) != 0 ||
		    mqlog_consumer_open(t, NULL, &c) != 0 ||
		    mqlog_consumer_assign(c, all, 4) != 0)
			_exit(10);
		if (write(ready[1], &one, 1) != 1)
			_exit(11);
		for (int i = 0; i < ROUNDS; i++) {
			size_t n = 0;
			double now;
			if (mqlog_consumer_poll(c, &rec, 1, 5000, &n) != 0 ||
			    n != 1)
				_exit(12);
			now = h_mono_ms();
			if (write(times[1], &now, sizeof now) !=
			    (ssize_t)sizeof now)
				_exit(13);
		}
		mqlog_consumer_close(c);
		mqlog_topic_close(t);
		mqlog_close(db);
		_exit(0);
	}
	char b;
	ck_assert_int_eq(read(ready[0], &b, 1), 1);
	mqlog *db = h_open(fx_dir);
	mqlog_topic *t = h_topic(db, "t");
	for (int i = 0; i < ROUNDS; i++) {
		double at, woke;
		h_sleep_ms(5); /* let the child block */
		at = h_mono_ms();
		h_append1(t, (uint32_t)i % 4, "ping");
		ck_assert_int_eq(read(times[0], &woke, sizeof woke),
				 (ssize_t)sizeof woke);
		lat[i] = woke - at;
	}
	ck_assert_int_eq(wait_child(pid), 0);
	mqlog_topic_close(t);
	mqlog_close(db);
	for (int i = 1; i < ROUNDS; i++)
		for (int j = i; j > 0 && lat[j - 1] > lat[j]; j--) {
			double x = lat[j];
			lat[j] = lat[j - 1];
			lat[j - 1] = x;
		}
	fprintf(stderr, "cross-process wake: p50 %.3f ms, max %.3f ms\n",
		lat[ROUNDS / 2], lat[ROUNDS - 1]);
	ck_assert_msg(lat[ROUNDS / 2] < 5.0, "median wake %.3f ms",
		      lat[ROUNDS / 2]);
	ck_assert_msg(lat[ROUNDS - 1] < 100.0, "slowest wake %.3f ms",
		      lat[ROUNDS - 1]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* mqlog-tool consume --group                                               */
/* ------------------------------------------------------------------------ */

/* Start `mqlog-tool consume DIR t --group G ...` with stdout to @out. */
static pid_t spawn_tool(const char *group, const char *out)
{
	const char *tool = getenv("MQLOG_TOOL");
	pid_t pid;

	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(20);
		execl(tool, tool, "consume", fx_dir, "t", "--group", group,
		      "--idle-exit", "1500", "--heartbeat-ms", "100",
		      "--format", "json", (char *)NULL);
		_exit(21);
	}
	return pid;
}

/* Count each value "k<key>:<seq>" in the JSON lines of @path. */
static void tally_json(const char *path, uint8_t (*seen)[NKEYS], int rounds)
{
	size_t len = 0;
	unsigned char *data = h_slurp(path, &len);
	char *p, *save = NULL;

	data[len] = '\0'; /* h_slurp leaves room for it */
	for (p = strtok_r((char *)data, "\n", &save); p;
	     p = strtok_r(NULL, "\n", &save)) {
		const char *v = strstr(p, "\"value\":\"k");
		int k, s;
		ck_assert_msg(v && sscanf(v, "\"value\":\"k%d:%d", &k, &s) == 2,
			      "%s: bad line %s", path, p);
		ck_assert(k >= 0 && k < NKEYS && s >= 0 && s < rounds);
		seen[s][k]++;
	}
	free(data);
}

static void run_tool_group(int kill_one)
{
	enum {
		ROUNDS = 300
	};
	static uint8_t seen[ROUNDS][NKEYS];
	char outs[3][4096];
	pid_t pids[3];
	mqlog *db;
	mqlog_topic *t;

	if (!getenv("MQLOG_TOOL")) {
		fprintf(stderr, "MQLOG_TOOL not set: skipped\n");
		return;
	}
	create_topic(NPARTS);
	for (int i = 0; i < 3; i++) {
		snprintf(outs[i], sizeof outs[i], "%s.tool%d.out", fx_dir, i);
		pids[i] = spawn_tool("tg", outs[i]);
	}
	db = h_open(fx_dir);
	t = h_topic(db, "t");
	/* All three are members before the records come. */
	for (double t0 = h_mono_ms();;) {
		mqlog_group_info *g = NULL;
		size_t live = 0;
		if (mqlog_group_describe(db, "tg", "t", &g) == 0) {
			live = g->live_members;
			mqlog_group_info_free(g, 1);
		}
		if (live == 3)
			break;
		ck_assert_msg(h_mono_ms() - t0 < 10000, "tools did not join");
		h_sleep_ms(5);
	}
	for (int s = 0; s < ROUNDS; s++) {
		if (kill_one && s == ROUNDS / 2)
			ck_assert_int_eq(kill(pids[1], SIGKILL), 0);
		produce_round(t, s);
		if (s % 25 == 24)
			h_sleep_ms(5);
	}
	mqlog_topic_close(t);
	mqlog_close(db);
	for (int i = 0; i < 3; i++) {
		int st = wait_child(pids[i]);
		if (kill_one && i == 1)
			ck_assert_int_eq(st, 128 + SIGKILL);
		else
			ck_assert_msg(st == 0, "tool %d exited %d", i, st);
	}
	memset(seen, 0, sizeof seen);
	for (int i = 0; i < 3; i++)
		tally_json(outs[i], seen, ROUNDS);
	for (int s = 0; s < ROUNDS; s++)
		for (int k = 0; k < NKEYS; k++) {
			ck_assert_msg(seen[s][k] >= 1, "k%d:%d lost", k, s);
			if (!kill_one)
				ck_assert_msg(seen[s][k] == 1,
					      "k%d:%d printed %d times", k, s,
					      seen[s][k]);
		}
}

/* Three `consume --group` processes started at once share the partitions
 * and print every record exactly once. */
START_TEST(test_tool_group_share)
{
	run_tool_group(0);
}
END_TEST

/* Killing one hands its partitions to the others, which resume from its
 * last commit: nothing is lost. */
START_TEST(test_tool_group_kill)
{
	run_tool_group(1);
}
END_TEST

static void group_setup(void)
{
	fx_setup();
	child_stop = 0;
}

static void group_teardown(void)
{
	char path[4096];

	remove(done_path());
	snprintf(path, sizeof path, "rm -f '%s'.*.out", fx_dir);
	if (system(path) != 0)
		fprintf(stderr, "could not remove %s.*.out\n", fx_dir);
	fx_teardown();
}

static Suite *group_suite(void)
{
	Suite *s = suite_create("group");
	TCase *tc = tcase_create("processes");

	tcase_add_checked_fixture(tc, group_setup, group_teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_processes_share);
	tcase_add_test(tc, test_processes_join_midstream);
	tcase_add_test(tc, test_kill9_members);
	tcase_add_test(tc, test_two_groups);
	tcase_add_test(tc, test_leave_rebalance_time);
	tcase_add_test(tc, test_cross_process_wake);
	tcase_add_test(tc, test_tool_group_share);
	tcase_add_test(tc, test_tool_group_kill);
	suite_add_tcase(s, tc);
	return s;
}

H_MAIN(group_suite)
