/*
 * group.c - consumer groups: liveness of members, the assignment
 * strategies, the membership and rebalance protocol (each step one LMDB
 * transaction over the whole group, see group.h), the group's wake-up
 * word, and the inspection and reset calls of the public API.
 *
 * Liveness.  A member record carries its lease end (CLOCK_MONOTONIC ms,
 * which every process of the host shares), its pid, that process's start
 * time, its pid namespace and the boot id.  A member is dead when its
 * lease ran out, when it ran under an earlier boot, or - in our pid
 * namespace - when kill(pid, 0) says ESRCH, /proc/PID/stat shows a zombie,
 * or the pid now belongs to a process with another start time (pid
 * reuse).  Any member that runs a transaction removes the dead ones, so a
 * kill -9 is noticed at the next heartbeat of any other member.
 */
#include "group.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define GROUP_WORD_FILE_SIZE 4096u

/* ======================================================================== */
/* Names                                                                    */
/* ======================================================================== */

int mqlog_group_name_valid(const char *name)
{
	/* The topic rule: the name becomes a file name (DIR/groups/NAME). */
	return mqlog_topic_name_valid(name);
}

int group_check_name(const char *group, const char *what)
{
	if (!group)
		return mq_err(MQLOG_EINVAL, "%s: group name is NULL", what);
	if (!mqlog_group_name_valid(group)) {
		char shown[64];
		size_t i;

		for (i = 0; group[i] && i < sizeof shown - 4; i++)
			shown[i] = (group[i] >= 0x20 && group[i] < 0x7f) ?
					   group[i] :
					   '?';
		shown[i] = 0;
		if (group[i])
			strcat(shown, "...");
		return mq_err(MQLOG_EINVAL,
			      "%s: invalid group name \"%s\" (1-%d characters "
			      "of [A-Za-z0-9._-], not \".\" or \"..\")",
			      what, shown, GROUP_NAME_MAX);
	}
	return 0;
}

/* ======================================================================== */
/* Liveness                                                                 */
/* ======================================================================== */

static pthread_mutex_t self_mu = PTHREAD_MUTEX_INITIALIZER;
static struct group_self self_cache; /* valid while .pid == getpid() */

/*
 * Read the state (field 3) and start time (field 22) of @pid from
 * /proc/PID/stat.  The command name (field 2) may hold spaces and
 * parentheses, so fields are counted from its last ')'.
 */
static bool proc_stat(pid_t pid, char *state, uint64_t *start)
{
	char path[64], buf[1024];
	char *p, *tok, *save = NULL;
	ssize_t n;
	int fd, field = 2;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return false;
	for (tok = strtok_r(p + 1, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		field++;
		if (field == 3)
			*state = tok[0];
		if (field == 22) {
			*start = strtoull(tok, NULL, 10);
			return true;
		}
	}
	return false;
}

static uint64_t boot_hash(void)
{
	char buf[64];
	ssize_t n;
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf);
	close(fd);
	return n > 0 ? record_key_hash(buf, (size_t)n) : 0;
}

void group_self_get(struct group_self *out)
{
	pid_t pid = getpid();

	pthread_mutex_lock(&self_mu);
	if (self_cache.pid != pid) {
		struct group_self s = { .pid = pid };
		struct stat st;
		char state;
		uint64_t start;

		if (proc_stat(pid, &state, &start))
			s.pid_start = start;
		if (stat("/proc/self/ns/pid", &st) == 0)
			s.pidns = (uint64_t)st.st_ino;
		s.boot = boot_hash();
		self_cache = s;
	}
	*out = self_cache;
	pthread_mutex_unlock(&self_mu);
}

const char *group_member_dead(const struct group_member *m, int64_t now,
			      const struct group_self *self)
{
	char state;
	uint64_t start;

	if (m->boot != self->boot)
		return "it ran before the last reboot";
	if (now > m->lease_until)
		return "its lease ran out";
	if (m->pid <= 0 || m->pidns != self->pidns || m->pid == self->pid)
		return NULL; /* not ours to check: the lease decides */
	if (kill(m->pid, 0) != 0 && errno == ESRCH)
		return "its process is gone";
	if (proc_stat(m->pid, &state, &start)) {
		if (state == 'Z' || state == 'X')
			return "its process exited";
		if (m->pid_start && start != m->pid_start)
			return "its process is gone (pid reused)";
	}
	return NULL;
}

/* ======================================================================== */
/* Assignment                                                               */
/* ======================================================================== */

static int member_order(const void *a, const void *b)
{
	const struct group_member *x = a, *y = b;

	if (x->joined != y->joined)
		return x->joined < y->joined ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static size_t member_index(const struct group_snap *s, uint64_t id)
{
	for (size_t i = 0; i < s->nmembers; i++)
		if (s->members[i].id == id)
			return i;
	return SIZE_MAX;
}

/* Order of quota assignment in sticky: most partitions first. */
struct sticky_rank {
	size_t i;      /* member index (in (joined, id) order) */
	uint32_t have; /* partitions the previous target gave it */
};

static int sticky_rank_cmp(const void *a, const void *b)
{
	const struct sticky_rank *x = a, *y = b;

	if (x->have != y->have)
		return x->have > y->have ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * Sticky: every member keeps up to its quota of the partitions it had
 * (the lowest-numbered ones); quotas are floor(P/n) or one more, the extra
 * ones going to the members that had the most.  Partitions left over
 * (from members that left, or above a quota) go, in partition order, to
 * the member furthest below its quota (first in (joined, id) order).
 */
static int assign_sticky(struct group_snap *s)
{
	size_t n = s->nmembers;
	uint32_t q = s->nparts / (uint32_t)n, r = s->nparts % (uint32_t)n;
	struct sticky_rank *rank = calloc(n, sizeof *rank);
	uint32_t *quota = calloc(n, sizeof *quota);
	uint32_t *keep = calloc(n, sizeof *keep);
	size_t *prev = calloc(s->nparts ? s->nparts : 1, sizeof *prev);
	int rc = 0;

	if (!rank || !quota || !keep || !prev) {
		rc = mq_err(MQLOG_ENOMEM, "sticky assignment of %zu members",
			    n);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		rank[i].i = i;
	for (uint32_t p = 0; p < s->nparts; p++) {
		prev[p] = member_index(s, s->target[p]);
		if (prev[p] != SIZE_MAX)
			rank[prev[p]].have++;
	}
	qsort(rank, n, sizeof *rank, sticky_rank_cmp);
	for (size_t k = 0; k < n; k++)
		quota[rank[k].i] = q + (k < r ? 1 : 0);
	for (uint32_t p = 0; p < s->nparts; p++) {
		size_t i = prev[p];

		s->target[p] = 0;
		if (i != SIZE_MAX && keep[i] < quota[i]) {
			s->target[p] = s->members[i].id;
			keep[i]++;
		}
	}
	for (uint32_t p = 0; p < s->nparts; p++) {
		size_t best = 0;
		uint32_t best_gap = 0;

		if (s->target[p])
			continue;
		for (size_t i = 0; i < n; i++) {
			uint32_t gap = quota[i] - keep[i];
			if (gap > best_gap) {
				best = i;
				best_gap = gap;
			}
		}
		s->target[p] = s->members[best].id;
		keep[best]++;
	}
out:
	free(rank);
	free(quota);
	free(keep);
	free(prev);
	return rc;
}

int group_assign(struct group_snap *s)
{
	size_t n = s->nmembers;
	uint32_t P = s->nparts;

	if (n == 0) {
		memset(s->target, 0, P * sizeof *s->target);
		return 0;
	}
	qsort(s->members, n, sizeof *s->members, member_order);
	switch (s->strategy) {
	case MQLOG_ASSIGN_ROUND_ROBIN:
		for (uint32_t p = 0; p < P; p++)
			s->target[p] = s->members[p % n].id;
		return 0;
	case MQLOG_ASSIGN_STICKY:
		return assign_sticky(s);
	default: {
		/* Range: Kafka's RangeAssignor for one topic. */
		uint32_t q = P / (uint32_t)n, r = P % (uint32_t)n, p = 0;

		for (size_t i = 0; i < n; i++) {
			uint32_t cnt = q + (i < r ? 1 : 0);
			for (uint32_t j = 0; j < cnt; j++)
				s->target[p++] = s->members[i].id;
		}
		return 0;
	}
	}
}

/* ======================================================================== */
/* The group's wake-up word                                                 */
/* ======================================================================== */

int group_word_open(struct mqlog *db, const char *group, struct group_word *w)
{
	char path[MQ_PATH_MAX];
	struct stat st;
	void *map;
	int fd;

	memset(w, 0, sizeof *w);
	snprintf(path, sizeof path, "%s/groups", db->path);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		return mq_err(-errno, "%s: create", path);
	snprintf(path, sizeof path, "%s/groups/%s", db->path, group);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return mq_err(-errno, "%s: open", path);
	/* Creators may race: extending to the same size twice is harmless,
	 * and a file that is already long enough is never shortened. */
	if (fstat(fd, &st) != 0 || (st.st_size < (off_t)GROUP_WORD_FILE_SIZE &&
				    ftruncate(fd, GROUP_WORD_FILE_SIZE) != 0)) {
		int e = errno;
		close(fd);
		return mq_err(mq_errno_rc(e), "%s: size", path);
	}
	map = mmap(NULL, GROUP_WORD_FILE_SIZE, PROT_READ | PROT_WRITE,
		   MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return mq_err(-errno, "%s: mmap", path);
	w->map = map;
	w->word = map;
	w->waiters = (uint32_t *)map + 1;
	return 0;
}

void group_word_close(struct group_word *w)
{
	if (w->map)
		munmap(w->map, GROUP_WORD_FILE_SIZE);
	memset(w, 0, sizeof *w);
}

void group_word_bump(struct group_word *w)
{
	if (!w->word)
		return;
	__atomic_add_fetch(w->word, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(w->waiters, __ATOMIC_SEQ_CST) > 0)
		syscall(SYS_futex, w->word, FUTEX_WAKE, INT32_MAX, NULL, NULL,
			0);
}

/* ======================================================================== */
/* Transaction bodies                                                       */
/* ======================================================================== */

static struct group_member *find_member(struct group_snap *s, uint64_t id)
{
	size_t i = member_index(s, id);
	return i == SIZE_MAX ? NULL : &s->members[i];
}

static void op_reset(struct group_op *op)
{
	op->generation = 0;
	op->expelled = false;
	op->changed = false;
	op->lease_until = 0;
	op->nclaimed = 0;
	op->nrevoke = 0;
	op->nreleased = 0;
	op->nowned = 0;
	op->npending = 0;
}

static void free_part(struct group_part *gp)
{
	gp->owner = 0;
	gp->owner_gen = 0;
}

/*
 * Remove members that are dead (never @op->member itself), free the
 * partitions they owned (uncommitted records are replayed from their last
 * commit: at-least-once), and free partitions whose owner is not a member
 * at all (removed by a forced reset).  Returns whether anything changed.
 */
static bool expire(struct group_snap *s, const struct group_op *op)
{
	bool changed = false;

	for (size_t i = 0; i < s->nmembers;) {
		struct group_member *m = &s->members[i];

		if (m->id != op->member &&
		    group_member_dead(m, op->now, &op->self)) {
			s->members[i] = s->members[--s->nmembers];
			changed = true;
			continue;
		}
		i++;
	}
	for (uint32_t p = 0; p < s->nparts; p++) {
		uint64_t o = s->parts[p].owner;
		if (o && member_index(s, o) == SIZE_MAX) {
			free_part(&s->parts[p]);
			changed = true;
		}
	}
	return changed;
}

/* The stored target must name live members only, and some for every
 * partition while there are members. */
static bool target_valid(const struct group_snap *s)
{
	if (!s->exists)
		return false;
	for (uint32_t p = 0; p < s->nparts; p++) {
		uint64_t t = s->target[p];
		if (s->nmembers == 0 ?
			    t != 0 :
			    (t == 0 || member_index(s, t) == SIZE_MAX))
			return false;
	}
	return true;
}

static int new_generation(struct group_snap *s, struct group_op *op)
{
	s->exists = true;
	s->generation++;
	op->changed = true;
	return group_assign(s);
}

static void renew(struct group_member *m, const struct group_op *op)
{
	m->lease_until = op->now + (int64_t)op->lease_ms;
	if (op->lease_cap && m->lease_until > op->lease_cap)
		m->lease_until = op->lease_cap;
	m->heartbeat = op->now;
}

/* Commit @pos into partition @p (when it is an offset) and free it. */
static void release_part(struct group_snap *s, struct group_op *op, uint32_t p)
{
	struct group_part *gp = &s->parts[p];

	if (op->pos && op->pos[p] != GROUP_NO_OFFSET) {
		gp->committed = op->pos[p];
		gp->commit_ms = mq_now_ms();
	}
	free_part(gp);
	op->released[op->nreleased++] = p;
	op->changed = true;
}

/*
 * Walk the partitions once: release (or report) what we own and the
 * target gives to another, claim what the target gives us and is free,
 * count what it gives us and another still owns, list what we own.
 */
static void settle(struct group_snap *s, struct group_op *op)
{
	uint64_t me = op->member;

	for (uint32_t p = 0; p < s->nparts; p++) {
		struct group_part *gp = &s->parts[p];

		if (gp->owner == me && s->target[p] != me) {
			if (op->release)
				release_part(s, op, p);
			else
				op->revoke[op->nrevoke++] = p;
		} else if (s->target[p] == me && gp->owner == 0) {
			gp->owner = me;
			gp->owner_gen = s->generation;
			op->claimed[op->nclaimed] = p;
			op->claimed_from[op->nclaimed++] = gp->committed;
		} else if (s->target[p] == me && gp->owner != me) {
			op->npending++;
		}
		if (gp->owner == me)
			op->owned[op->nowned++] = p;
	}
}

static int join_txn(struct group_snap *s, void *arg)
{
	struct group_op *op = arg;
	struct group_member m;
	int rc;

	op_reset(op);
	if (find_member(s, op->member))
		return mq_err(MQLOG_EEXIST,
			      "group '%s': member id %016" PRIx64 " is taken",
			      op->group, op->member);
	(void)expire(s, op);
	if (s->nmembers == 0)
		s->strategy = op->strategy;
	memset(&m, 0, sizeof m);
	m.id = op->member;
	m.pid = op->self.pid;
	m.pid_start = op->self.pid_start;
	m.pidns = op->self.pidns;
	m.boot = op->self.boot;
	m.lease_ms = op->lease_ms;
	m.joined = s->generation + 1;
	m.gen = s->generation + 1;
	renew(&m, op);
	/* index.c leaves room for one more member. */
	s->members[s->nmembers++] = m;
	rc = new_generation(s, op);
	if (rc)
		return rc;
	settle(s, op);
	op->generation = s->generation;
	op->lease_until = m.lease_until;
	return 0;
}

static int sync_txn(struct group_snap *s, void *arg)
{
	struct group_op *op = arg;
	struct group_member *m;
	int rc;

	op_reset(op);
	if (!find_member(s, op->member)) {
		op->expelled = true;
		op->generation = s->generation;
		return 0;
	}
	if (expire(s, op) || !target_valid(s)) {
		rc = new_generation(s, op);
		if (rc)
			return rc;
	}
	m = find_member(s, op->member);
	renew(m, op);
	m->gen = s->generation;
	settle(s, op);
	op->generation = s->generation;
	op->lease_until = m->lease_until;
	return 0;
}

static int release_txn(struct group_snap *s, void *arg)
{
	struct group_op *op = arg;
	struct group_member *m;

	op_reset(op);
	m = find_member(s, op->member);
	op->generation = s->generation;
	if (!m) {
		op->expelled = true;
		return 0;
	}
	renew(m, op);
	op->lease_until = m->lease_until;
	for (size_t i = 0; i < op->nlist; i++) {
		uint32_t p = op->list[i];
		if (p < s->nparts && s->parts[p].owner == op->member)
			release_part(s, op, p);
	}
	for (uint32_t p = 0; p < s->nparts; p++)
		if (s->parts[p].owner == op->member)
			op->owned[op->nowned++] = p;
	return 0;
}

static int leave_txn(struct group_snap *s, void *arg)
{
	struct group_op *op = arg;
	size_t i;

	op_reset(op);
	op->generation = s->generation;
	i = member_index(s, op->member);
	if (i == SIZE_MAX) {
		op->expelled = true;
		return 0;
	}
	for (uint32_t p = 0; p < s->nparts; p++)
		if (s->parts[p].owner == op->member)
			release_part(s, op, p);
	s->members[i] = s->members[--s->nmembers];
	(void)expire(s, op);
	return new_generation(s, op);
}

/* The message of a refused commit: which member, which generations. */
static int stale(const struct group_op *op, const struct group_snap *s,
		 uint32_t p, const char *why)
{
	if (p == UINT32_MAX)
		return mq_err(MQLOG_ESTALE,
			      "group '%s' topic '%s': member %016" PRIx64
			      " of generation %" PRIu64 " is stale (group at "
			      "generation %" PRIu64 "): %s",
			      op->group, op->t->name, op->member, op->my_gen,
			      s->generation, why);
	return mq_err(MQLOG_ESTALE,
		      "group '%s' topic '%s' partition %u: commit by member "
		      "%016" PRIx64 " of generation %" PRIu64
		      " refused (group at generation %" PRIu64 "): %s",
		      op->group, op->t->name, p, op->member, op->my_gen,
		      s->generation, why);
}

static int commit_txn(struct group_snap *s, void *arg)
{
	struct group_op *op = arg;
	struct group_member *m;
	int64_t now_ms = mq_now_ms();

	op_reset(op);
	op->generation = s->generation;
	m = find_member(s, op->member);
	if (!m)
		return stale(op, s, UINT32_MAX,
			     "the member was removed from the group (its lease "
			     "ran out or it was declared dead)");
	for (size_t i = 0; i < op->nlist; i++) {
		uint32_t p = op->list[i];
		char why[128];

		if (p >= s->nparts)
			return mq_err(MQLOG_EINVAL,
				      "group '%s' topic '%s': no partition %u",
				      op->group, op->t->name, p);
		if (s->parts[p].owner == op->member)
			continue;
		if (s->parts[p].owner)
			snprintf(why, sizeof why,
				 "the partition is owned by member %016" PRIx64
				 " since generation %" PRIu64,
				 s->parts[p].owner, s->parts[p].owner_gen);
		else
			snprintf(why, sizeof why,
				 "the partition was taken from this member");
		return stale(op, s, p, why);
	}
	for (size_t i = 0; i < op->nlist; i++) {
		struct group_part *gp = &s->parts[op->list[i]];
		if (op->no_rewind && gp->committed != GROUP_NO_OFFSET &&
		    gp->committed > op->offsets[i])
			continue;
		gp->committed = op->offsets[i];
		gp->commit_ms = now_ms;
	}
	renew(m, op);
	op->lease_until = m->lease_until;
	MQ_CRASH_POINT("commit.before");
	return 0;
}

static int heartbeat_txn(struct group_snap *s, void *arg)
{
	struct group_op *op = arg;
	struct group_member *m;

	op_reset(op);
	op->generation = s->generation;
	m = find_member(s, op->member);
	if (!m)
		return stale(op, s, UINT32_MAX,
			     "the member was removed from the group (its lease "
			     "ran out or it was declared dead)");
	renew(m, op);
	op->lease_until = m->lease_until;
	return 0;
}

/*
 * The background heartbeat: renew our lease (up to the cap: a member whose
 * application stopped polling still expires), and remove dead members,
 * which starts a new generation that the members' polls then act on.
 */
static int keepalive_txn(struct group_snap *s, void *arg)
{
	struct group_op *op = arg;
	struct group_member *m;
	int rc;

	op_reset(op);
	op->generation = s->generation;
	if (!find_member(s, op->member)) {
		op->expelled = true;
		return 0;
	}
	if (expire(s, op) || !target_valid(s)) {
		rc = new_generation(s, op);
		if (rc)
			return rc;
	}
	m = find_member(s, op->member);
	renew(m, op);
	op->generation = s->generation;
	op->lease_until = m->lease_until;
	return 0;
}

static int run(struct group_op *op, bool durable, group_txn_fn fn)
{
	struct mqlog_topic *t = op->t;
	int rc;

	op->now = (int64_t)(mq_mono_ns() / 1000000u);
	rc = index_group_update(t->db->ix, op->group, t->meta.id,
				t->meta.cfg.partitions, durable, fn, op);
	if (rc && rc != MQLOG_ESTALE && rc != MQLOG_EEXIST)
		mq_err_wrap(rc, "group '%s' topic '%s'", op->group, t->name);
	return rc;
}

int group_op_join(struct group_op *op)
{
	return run(op, true, join_txn);
}

/* A heartbeat that changes nothing else need not force the meta page. */
int group_op_sync(struct group_op *op)
{
	return run(op, false, sync_txn);
}

/*
 * Ops that commit offsets may free records under interest retention.  Best
 * effort: the commit is durable either way, and the next commit, roll or
 * mqlog_maintain() retries a failed deletion.
 */
int group_op_release(struct group_op *op)
{
	int rc = run(op, true, release_txn);

	if (!rc)
		(void)retention_interest_commit(op->t, op->released, NULL,
						op->nreleased);
	return rc;
}

int group_op_leave(struct group_op *op)
{
	int rc = run(op, true, leave_txn);

	if (!rc)
		(void)retention_interest_commit(op->t, op->released, NULL,
						op->nreleased);
	return rc;
}

int group_op_commit(struct group_op *op)
{
	int rc = run(op, true, commit_txn);

	if (rc == 0)
		MQ_CRASH_POINT("commit.after");
	if (!rc)
		(void)retention_interest_commit(op->t, op->list, op->offsets,
						op->nlist);
	return rc;
}

int group_op_commit_intent(struct group_op *op)
{
	struct mqlog_topic *t = op->t;
	int rc;

	op->now = (int64_t)(mq_mono_ns() / 1000000u);
	rc = index_group_update_intent(t->db->ix, op->group, t->meta.id,
				       t->meta.cfg.partitions, commit_txn, op,
				       op->intent_part, op->intent_offset,
				       op->intent, op->intent_len);
	if (rc && rc != MQLOG_ESTALE)
		mq_err_wrap(rc, "group '%s' topic '%s'", op->group, t->name);
	return rc;
}

int group_op_heartbeat(struct group_op *op)
{
	return run(op, false, heartbeat_txn);
}

int group_op_keepalive(struct group_op *op)
{
	return run(op, false, keepalive_txn);
}

/* ======================================================================== */
/* Inspection                                                               */
/* ======================================================================== */

static void info_clear(mqlog_group_info *g)
{
	free(g->group);
	free(g->topic);
	free(g->members);
	free(g->partitions);
	memset(g, 0, sizeof *g);
}

void mqlog_group_info_free(mqlog_group_info *groups, size_t count)
{
	if (!groups)
		return;
	for (size_t i = 0; i < count; i++)
		info_clear(&groups[i]);
	free(groups);
}

/* The live start and end of a partition. */
static int part_view(struct mqlog_topic *t, uint32_t p, struct pview *v)
{
	struct partition *part;
	int rc = topic_partition(t, p, &part);

	if (rc)
		return rc;
	state_read_view(part->st, v);
	return 0;
}

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Fill @g for @group on open topic @t. */
static int info_fill(struct mqlog *db, const char *group, struct mqlog_topic *t,
		     mqlog_group_info *g)
{
	uint32_t np = t->meta.cfg.partitions;
	struct group_self self;
	struct group_snap s;
	int64_t now = (int64_t)(mq_mono_ns() / 1000000u);
	int rc;

	memset(g, 0, sizeof *g);
	group_self_get(&self);
	rc = index_group_read(db->ix, group, t->meta.id, np, &s);
	if (rc)
		return rc;
	g->group = strdup(group);
	g->topic = strdup(t->name);
	g->members = calloc(s.nmembers ? s.nmembers : 1, sizeof *g->members);
	g->partitions = calloc(np, sizeof *g->partitions);
	if (!g->group || !g->topic || !g->members || !g->partitions) {
		rc = mq_err(MQLOG_ENOMEM, "group '%s'", group);
		goto out;
	}
	g->generation = s.generation;
	g->strategy = (int)s.strategy;
	qsort(s.members, s.nmembers, sizeof *s.members, member_order);
	g->member_count = s.nmembers;
	for (size_t i = 0; i < s.nmembers; i++) {
		const struct group_member *m = &s.members[i];
		mqlog_group_member_info *mi = &g->members[i];

		mi->member_id = m->id;
		mi->pid = m->pid;
		mi->alive = group_member_dead(m, now, &self) ? 0 : 1;
		mi->lease_left_ms = m->lease_until - now;
		mi->heartbeat_age_ms = now - m->heartbeat;
		mi->generation = m->gen;
		for (uint32_t p = 0; p < np; p++)
			if (s.parts[p].owner == m->id)
				mi->owned++;
		if (mi->alive)
			g->live_members++;
	}
	g->partition_count = np;
	for (uint32_t p = 0; p < np; p++) {
		mqlog_group_partition_info *pi = &g->partitions[p];
		const struct group_part *gp = &s.parts[p];
		struct pview v;

		rc = part_view(t, p, &v);
		if (rc)
			goto out;
		pi->partition = p;
		pi->start_offset = v.start_offset;
		pi->end_offset = v.end_offset;
		pi->has_committed = gp->committed != GROUP_NO_OFFSET;
		pi->committed = pi->has_committed ? gp->committed : 0;
		pi->commit_time_ms = gp->commit_ms;
		pi->lag = v.end_offset -
			  (pi->has_committed ?
				   clamp_u64(gp->committed, v.start_offset,
					     v.end_offset) :
				   v.start_offset);
		pi->owner = gp->owner;
		pi->assigned = s.target[p];
		g->lag += pi->lag;
	}
	rc = 0;
out:
	group_snap_free(&s);
	if (rc)
		info_clear(g);
	return rc;
}

int mqlog_group_describe(mqlog *db, const char *group, const char *topic,
			 mqlog_group_info **out)
{
	struct mqlog_topic *t = NULL;
	mqlog_group_info *g;
	struct group_ref *refs = NULL;
	size_t nrefs = 0;
	bool found = false;
	int rc;

	if (!db || !out)
		return mq_err(MQLOG_EINVAL, "group describe: NULL argument");
	rc = group_check_name(group, "group describe");
	if (rc)
		return rc;
	rc = mqlog_topic_open(db, topic, &t);
	if (rc)
		return rc;
	rc = index_group_list(db->ix, &refs, &nrefs);
	if (rc)
		goto out;
	for (size_t i = 0; i < nrefs; i++)
		if (refs[i].tid == t->meta.id && !strcmp(refs[i].name, group))
			found = true;
	if (!found) {
		rc = mq_err(MQLOG_ENOENT,
			    "group '%s' on topic '%s': no such "
			    "group",
			    group, topic);
		goto out;
	}
	g = calloc(1, sizeof *g);
	if (!g) {
		rc = mq_err(MQLOG_ENOMEM, "group '%s'", group);
		goto out;
	}
	rc = info_fill(db, group, t, g);
	if (rc) {
		free(g);
		goto out;
	}
	*out = g;
out:
	free(refs);
	mqlog_topic_close(t);
	return rc;
}

int mqlog_group_list(mqlog *db, mqlog_group_info **groups, size_t *count)
{
	struct group_ref *refs = NULL;
	mqlog_group_info *list = NULL;
	char **names = NULL;
	size_t nrefs = 0, nnames = 0, n = 0;
	int rc;

	if (!db || !groups || !count)
		return mq_err(MQLOG_EINVAL, "group list: NULL argument");
	rc = index_group_list(db->ix, &refs, &nrefs);
	if (rc)
		return rc;
	rc = index_topic_list(db->ix, &names, &nnames);
	if (rc)
		goto out;
	list = calloc(nrefs ? nrefs : 1, sizeof *list);
	if (!list) {
		rc = mq_err(MQLOG_ENOMEM, "group list");
		goto out;
	}
	/* Topics by id; groups of deleted topics are skipped. */
	for (size_t k = 0; k < nnames; k++) {
		struct topic_meta m;
		struct mqlog_topic *t;

		if (index_topic_get(db->ix, names[k], &m) != 0)
			continue;
		t = NULL;
		for (size_t i = 0; i < nrefs; i++) {
			if (refs[i].tid != m.id)
				continue;
			if (!t) {
				rc = mqlog_topic_open(db, names[k], &t);
				if (rc == MQLOG_ENOENT)
					break; /* deleted meanwhile */
				if (rc)
					goto out;
			}
			rc = info_fill(db, refs[i].name, t, &list[n]);
			if (rc) {
				mqlog_topic_close(t);
				goto out;
			}
			n++;
		}
		mqlog_topic_close(t);
		rc = 0;
	}
	/* Sorted by group, then topic name. */
	for (size_t i = 1; i < n; i++) {
		mqlog_group_info x = list[i];
		size_t j = i;
		while (j > 0) {
			int c = strcmp(list[j - 1].group, x.group);
			if (c < 0 ||
			    (c == 0 && strcmp(list[j - 1].topic, x.topic) <= 0))
				break;
			list[j] = list[j - 1];
			j--;
		}
		list[j] = x;
	}
	*groups = list;
	*count = n;
	list = NULL;
	n = 0;
out:
	mqlog_group_info_free(list, n);
	mqlog_list_free(names, nnames);
	free(refs);
	return rc;
}

/* ======================================================================== */
/* Reset                                                                    */
/* ======================================================================== */

struct reset_args {
	const char *group;	 /* group name */
	const char *topic;	 /* topic name */
	const uint64_t *offsets; /* [nparts] new committed offsets */
	bool force;		 /* remove live members */
	struct group_self self;	 /* this process */
	int64_t now;		 /* CLOCK_MONOTONIC ms */
	bool changed;		 /* membership changed: bump the word */
};

static int reset_txn(struct group_snap *s, void *arg)
{
	struct reset_args *a = arg;
	struct group_op op = { .member = 0, .self = a->self, .now = a->now };
	size_t live = 0;
	int32_t pid = 0;
	int64_t now_ms = mq_now_ms();

	a->changed = false;
	for (size_t i = 0; i < s->nmembers; i++) {
		if (!group_member_dead(&s->members[i], a->now, &a->self)) {
			live++;
			pid = s->members[i].pid;
		}
	}
	if (live && !a->force)
		return mq_err(MQLOG_EBUSY,
			      "group '%s' on topic '%s' has %zu live member%s "
			      "(pid %d%s): stop %s first, or force the reset",
			      a->group, a->topic, live, live == 1 ? "" : "s",
			      (int)pid, live > 1 ? ", ..." : "",
			      live == 1 ? "it" : "them");
	if (s->nmembers) {
		/* Forced (or only dead members left): nobody owns anything
		 * any more; live members find themselves removed. */
		s->nmembers = 0;
		(void)expire(s, &op);
		s->exists = true;
		s->generation++;
		memset(s->target, 0, s->nparts * sizeof *s->target);
		a->changed = true;
	}
	for (uint32_t p = 0; p < s->nparts; p++) {
		s->parts[p].committed = a->offsets[p];
		s->parts[p].commit_ms = now_ms;
	}
	return 0;
}

/* Interest retention of every partition of @t (after a reset or delete). */
static int interest_all(struct mqlog_topic *t)
{
	int rc = 0;

	for (uint32_t p = 0; p < t->meta.cfg.partitions && t->meta.cfg.interest;
	     p++) {
		int r = retention_interest_commit(t, &p, NULL, 1);
		if (r && !rc)
			rc = r;
	}
	return rc;
}

static int reset(mqlog *db, const char *group, const char *topic, bool by_time,
		 uint64_t offset, int64_t ts, unsigned flags)
{
	struct mqlog_topic *t = NULL;
	struct reset_args a;
	struct group_word w;
	uint64_t *offs = NULL;
	uint32_t np;
	int rc;

	if (!db)
		return mq_err(MQLOG_EINVAL, "reset offsets: db is NULL");
	rc = group_check_name(group, "reset offsets");
	if (rc)
		return rc;
	if (flags & ~MQLOG_RESET_FORCE)
		return mq_err(MQLOG_EINVAL, "reset offsets: unknown flags %#x",
			      flags);
	if (db->rdonly)
		return mq_err(MQLOG_ERDONLY,
			      "reset offsets of group '%s': %s "
			      "opened read-only",
			      group, db->path);
	rc = mqlog_topic_open(db, topic, &t);
	if (rc)
		return rc;
	np = t->meta.cfg.partitions;
	offs = calloc(np, sizeof *offs);
	if (!offs) {
		rc = mq_err(MQLOG_ENOMEM, "reset offsets");
		goto out;
	}
	for (uint32_t p = 0; p < np && !rc; p++) {
		struct pview v;
		mqlog_reader *r = NULL;

		if (by_time) {
			rc = mqlog_reader_open(t, p, &r);
			if (!rc)
				rc = mqlog_reader_seek_time(r, ts);
			if (!rc)
				offs[p] = mqlog_reader_position(r);
			mqlog_reader_close(r);
			continue;
		}
		rc = part_view(t, p, &v);
		if (rc)
			break;
		if (offset == MQLOG_OFFSET_EARLIEST)
			offs[p] = v.start_offset;
		else if (offset == MQLOG_OFFSET_LATEST)
			offs[p] = v.end_offset;
		else
			offs[p] =
				clamp_u64(offset, v.start_offset, v.end_offset);
	}
	if (rc) {
		mq_err_wrap(rc, "reset offsets of group '%s' on '%s'", group,
			    topic);
		goto out;
	}
	memset(&a, 0, sizeof a);
	a.group = group;
	a.topic = topic;
	a.offsets = offs;
	a.force = (flags & MQLOG_RESET_FORCE) != 0;
	group_self_get(&a.self);
	a.now = (int64_t)(mq_mono_ns() / 1000000u);
	rc = index_group_update(db->ix, group, t->meta.id, np, true, reset_txn,
				&a);
	if (rc)
		goto out;
	if (a.changed && group_word_open(db, group, &w) == 0) {
		group_word_bump(&w);
		group_word_close(&w);
	}
	(void)interest_all(t);
out:
	free(offs);
	mqlog_topic_close(t);
	return rc;
}

int mqlog_group_reset_offsets(mqlog *db, const char *group, const char *topic,
			      uint64_t offset, unsigned flags)
{
	return reset(db, group, topic, false, offset, 0, flags);
}

int mqlog_group_reset_offsets_time(mqlog *db, const char *group,
				   const char *topic, int64_t timestamp_ms,
				   unsigned flags)
{
	return reset(db, group, topic, true, 0, timestamp_ms, flags);
}

/* ======================================================================== */
/* Deleting a group                                                         */
/* ======================================================================== */

struct delete_args {
	const char *group;	/* group name */
	const char *topic;	/* topic name */
	bool force;		/* remove live members */
	struct group_self self; /* this process */
	int64_t now;		/* CLOCK_MONOTONIC ms */
	size_t members;		/* members removed */
};

static int delete_check(struct group_snap *s, void *arg)
{
	struct delete_args *a = arg;
	size_t live = 0;
	int32_t pid = 0;

	for (size_t i = 0; i < s->nmembers; i++) {
		if (!group_member_dead(&s->members[i], a->now, &a->self)) {
			live++;
			pid = s->members[i].pid;
		}
	}
	a->members = s->nmembers;
	if (live && !a->force)
		return mq_err(MQLOG_EBUSY,
			      "group '%s' on topic '%s' has %zu live member%s "
			      "(pid %d%s): stop %s first, or force the delete",
			      a->group, a->topic, live, live == 1 ? "" : "s",
			      (int)pid, live > 1 ? ", ..." : "",
			      live == 1 ? "it" : "them");
	return 0;
}

int mqlog_group_delete(mqlog *db, const char *group, const char *topic,
		       unsigned flags)
{
	struct mqlog_topic *t = NULL;
	struct delete_args a;
	struct group_word w;
	int rc;

	if (!db)
		return mq_err(MQLOG_EINVAL, "delete group: db is NULL");
	rc = group_check_name(group, "delete group");
	if (rc)
		return rc;
	if (!topic)
		return mq_err(MQLOG_EINVAL, "delete group '%s': topic is NULL",
			      group);
	if (flags & ~MQLOG_RESET_FORCE)
		return mq_err(MQLOG_EINVAL,
			      "delete group '%s': unknown flags "
			      "%#x",
			      group, flags);
	if (db->rdonly)
		return mq_err(MQLOG_ERDONLY,
			      "delete group '%s': %s opened read-only", group,
			      db->path);
	rc = mqlog_topic_open(db, topic, &t);
	if (rc)
		return mq_err_wrap(rc, "delete group '%s'", group);
	memset(&a, 0, sizeof a);
	a.group = group;
	a.topic = topic;
	a.force = (flags & MQLOG_RESET_FORCE) != 0;
	group_self_get(&a.self);
	a.now = (int64_t)(mq_mono_ns() / 1000000u);
	rc = index_group_delete(db->ix, group, t->meta.id,
				t->meta.cfg.partitions, delete_check, &a);
	if (rc == MQLOG_ENOENT)
		rc = mq_err(MQLOG_ENOENT,
			    "delete group '%s': no record on "
			    "topic '%s'",
			    group, topic);
	if (rc)
		goto out;
	/* Members (live ones, when forced) find themselves removed. */
	if (a.members && group_word_open(db, group, &w) == 0) {
		group_word_bump(&w);
		group_word_close(&w);
	}
	rc = interest_all(t);
out:
	mqlog_topic_close(t);
	return rc;
}
