/*
 * consumer.c - consumers: standalone or members of a group, polling with
 * zero-copy records, blocking on futex_waitv(2), offsets, the group work
 * each poll does (commit, release, claim, callbacks) and the heartbeat
 * thread of each member.
 *
 * Why futex_waitv.  A consumer reads several partitions and must wake when
 * any of them grows, or when its group changes.  Every partition already
 * has a futex word in its shared state that each append bumps (and wakes,
 * only when someone waits on it); futex_waitv (Linux 5.16) waits on up to
 * 128 such words at once, so a consumer sleeps on exactly its partitions
 * plus its group's word: no producer-side change, no extra shared file on
 * the append path, no wake-ups for partitions other members own, and no
 * polling.  (A topic-wide word bumped by every publish would wake every
 * consumer of the topic on every append.)  On a kernel without it (ENOSYS)
 * a consumer waits on one word at a time in slices of WAIT_SLICE_MS.
 *
 * Lost wake-ups are impossible for the usual reason: each word is loaded
 * before the condition is checked (records past the position, group word
 * unchanged), the waiter count is raised, and the kernel compares every
 * word with the loaded value before sleeping; a publisher bumps the word
 * before it reads the waiter count.
 *
 * Group work in a poll, in order: commit what the previous poll returned
 * (AFTER mode, every auto_commit_interval_ms); a group sync when the
 * group's word moved and the generation changed or a partition we wait for
 * may be free; read; wait.  The lease is renewed (and dead members removed)
 * by a heartbeat thread per member, because LMDB fdatasyncs every write
 * transaction and that must not delay delivery; it renews to no more than
 * lease_ms past the application's last poll.  A member never hands out
 * records after its own lease has run out without first syncing, so a
 * member removed for a stall learns it before it delivers again.
 */
#include "dlq.h"
#include "group.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_WAITV_MAX
#define FUTEX_WAITV_MAX 128
#define FUTEX_32	2
struct futex_waitv {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t __reserved;
};
#endif

#define WAIT_SLICE_MS 10 /* wait slice over > 127 partitions, or no waitv */

/* One partition of the topic, as this consumer sees it. */
struct cpart {
	struct partition *part; /* its engine object, once opened */
	mqlog_reader *r;	/* open while the partition is assigned */
	uint64_t committed;	/* last offset committed by us or claimed
				 * from; GROUP_NO_OFFSET when unknown */
	uint64_t saved;		/* BEFORE mode: position before the read */
	uint64_t rewind;	/* a held record (due later): read again from
				 * here; GROUP_NO_OFFSET when none */
	int64_t hold_until;	/* CLOCK_MONOTONIC ms: the held record is due
				 * then; nothing is read before */
};

/* A record a poll handed out from <topic>.retry (nack needs to know). */
struct delivered {
	uint32_t partition;	 /* its retry partition */
	uint64_t offset;	 /* its offset */
	const void *headers_raw; /* its headers, as handed out */
};

struct mqlog_consumer {
	struct mqlog_topic *t;	    /* topic (borrowed) */
	uint32_t nparts;	    /* its partitions */
	mqlog_consumer_options opt; /* options (group points at name) */
	char *name;		    /* group name, NULL when standalone */
	struct cpart *parts;	    /* [nparts] */
	uint32_t *assigned;	    /* assigned partitions, increasing */
	size_t nassigned;	    /* entries in assigned */
	size_t rr;		    /* first partition of the next read round */
	size_t wait_rr;		    /* first partition of the next wait */
	bool in_callback;	    /* a rebalance callback is running */
	bool waitv_missing;	    /* futex_waitv returned ENOSYS */

	/* Group member state. */
	uint64_t member;	/* member id */
	uint64_t generation;	/* generation of the last sync */
	int64_t lease_until;	/* CLOCK_MONOTONIC ms: our lease end (atomic:
				 * the heartbeat thread renews it) */
	int64_t next_check;	/* CLOCK_MONOTONIC ms: next look at the
				 * generation when nothing woke us */
	int64_t last_active;	/* CLOCK_MONOTONIC ms of the last poll or
				 * heartbeat call (atomic) */
	int64_t last_commit;	/* CLOCK_MONOTONIC ms of the last commit */
	struct group_word gw;	/* the group's wake-up word */
	uint32_t gw_seen;	/* its value when we last looked */
	size_t npending;	/* our share still owned by others */
	struct group_self self; /* our process */
	bool deferred;		/* claims of open() not yet reported */

	/* The heartbeat thread. */
	pthread_t hb;	       /* the thread */
	bool hb_started;       /* it runs */
	pthread_mutex_t hb_mu; /* guards hb_stop and hb_member */
	pthread_cond_t hb_cv;  /* wakes it to stop */
	bool hb_stop;	       /* asks it to exit */
	uint64_t hb_member;    /* the member id it renews */

	/* Scratch arrays of nparts entries for the group operations. */
	uint64_t *pos;	   /* offsets to commit when releasing */
	uint32_t *claimed; /* op outputs */
	uint64_t *claimed_from;
	uint32_t *revoke;
	uint32_t *released;
	uint32_t *owned;
	uint32_t *list;	   /* commit: partitions */
	uint64_t *offsets; /* commit: offsets */
	uint32_t *cb;	   /* a callback's partitions */
	uint32_t *later;   /* ASSIGNED list kept across a REVOKED */

	/* Retries and dead letters (dlq.c). */
	bool is_retry;		      /* this reads <topic>.retry for an
				       * outer consumer */
	struct mqlog_consumer *retry; /* member of the same group on
				       * <topic>.retry, or NULL */
	mqlog_topic *rt;	      /* <topic>.retry while retry is open */
	int64_t retry_check;	      /* CLOCK_MONOTONIC ms: next look for
				       * <topic>.retry */
	struct delivered *dl;	      /* retry records of the last poll */
	size_t ndl, dl_cap;	      /* entries used, allocated */
	bool intents_pending;	      /* an intent of ours failed to
				       * complete: try again */
	int64_t intents_retry;	      /* CLOCK_MONOTONIC ms of that try */
	mqlog_consumer_stats stats;   /* counters */
};

static int64_t mono_ms(void)
{
	return (int64_t)(mq_mono_ns() / 1000000u);
}

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* ======================================================================== */
/* Options                                                                  */
/* ======================================================================== */

void mqlog_consumer_options_init(mqlog_consumer_options *opts)
{
	memset(opts, 0, sizeof *opts);
	opts->strategy = MQLOG_ASSIGN_RANGE;
	opts->commit_mode = MQLOG_COMMIT_AFTER;
	opts->auto_commit_interval_ms = 1000;
	opts->heartbeat_ms = 1000;
	opts->lease_ms = 10000;
	opts->reset_offset = MQLOG_OFFSET_EARLIEST;
}

static int check_options(const mqlog_consumer_options *o, const char *topic)
{
	if (o->strategy < MQLOG_ASSIGN_RANGE ||
	    o->strategy > MQLOG_ASSIGN_STICKY)
		return mq_err(MQLOG_EINVAL,
			      "consumer of '%s': strategy %d: "
			      "must be range, round-robin or "
			      "sticky",
			      topic, o->strategy);
	if (o->commit_mode < MQLOG_COMMIT_AFTER ||
	    o->commit_mode > MQLOG_COMMIT_MANUAL)
		return mq_err(MQLOG_EINVAL,
			      "consumer of '%s': commit mode %d: "
			      "must be after, before or manual",
			      topic, o->commit_mode);
	if (o->heartbeat_ms < 1 || o->heartbeat_ms > 3600000u)
		return mq_err(MQLOG_EINVAL,
			      "consumer of '%s': heartbeat_ms %u: "
			      "must be 1..3600000",
			      topic, o->heartbeat_ms);
	if (o->lease_ms < 2 * o->heartbeat_ms || o->lease_ms > 86400000u)
		return mq_err(MQLOG_EINVAL,
			      "consumer of '%s': lease_ms %u: "
			      "must be 2 x heartbeat_ms (%u) .. "
			      "86400000",
			      topic, o->lease_ms, 2 * o->heartbeat_ms);
	if (o->auto_commit_interval_ms > 86400000u)
		return mq_err(MQLOG_EINVAL,
			      "consumer of '%s': "
			      "auto_commit_interval_ms %u: must "
			      "be <= 86400000",
			      topic, o->auto_commit_interval_ms);
	if (o->reset_offset != MQLOG_OFFSET_EARLIEST &&
	    o->reset_offset != MQLOG_OFFSET_LATEST)
		return mq_err(MQLOG_EINVAL,
			      "consumer of '%s': reset_offset "
			      "must be MQLOG_OFFSET_EARLIEST or "
			      "MQLOG_OFFSET_LATEST",
			      topic);
	return 0;
}

/* ======================================================================== */
/* Assigned partitions                                                      */
/* ======================================================================== */

static bool assigned(const struct mqlog_consumer *c, uint32_t p)
{
	return p < c->nparts && c->parts[p].r != NULL;
}

static void list_insert(struct mqlog_consumer *c, uint32_t p)
{
	size_t i = c->nassigned;

	while (i > 0 && c->assigned[i - 1] > p) {
		c->assigned[i] = c->assigned[i - 1];
		i--;
	}
	c->assigned[i] = p;
	c->nassigned++;
}

static void list_remove(struct mqlog_consumer *c, uint32_t p)
{
	for (size_t i = 0; i < c->nassigned; i++) {
		if (c->assigned[i] != p)
			continue;
		memmove(&c->assigned[i], &c->assigned[i + 1],
			(c->nassigned - i - 1) * sizeof *c->assigned);
		c->nassigned--;
		return;
	}
}

static uint64_t position_of(const struct mqlog_consumer *c, uint32_t p)
{
	if (c->parts[p].rewind != GROUP_NO_OFFSET)
		return c->parts[p].rewind;
	return mqlog_reader_position(c->parts[p].r);
}

/* Forget a held record (the position is being set anew). */
static void unhold(struct cpart *cp)
{
	cp->rewind = GROUP_NO_OFFSET;
	cp->hold_until = 0;
}

/* Put @p's reader at @from (GROUP_NO_OFFSET: the reset policy), clamped
 * into the partition's current [start, end]. */
static int position_at(struct mqlog_consumer *c, uint32_t p, uint64_t from)
{
	struct cpart *cp = &c->parts[p];
	struct pview v;
	uint64_t at;
	int rc = 0;

	unhold(cp);
	for (int tries = 0; tries < 8; tries++) {
		state_read_view(cp->part->st, &v);
		if (from == GROUP_NO_OFFSET)
			at = c->opt.reset_offset == MQLOG_OFFSET_LATEST ?
				     v.end_offset :
				     v.start_offset;
		else
			at = clamp_u64(from, v.start_offset, v.end_offset);
		rc = mqlog_reader_seek(cp->r, at);
		/* Retention (or an append racing a recovery) moved the
		 * range between our look and the seek: look again. */
		if (rc != MQLOG_ERANGE)
			break;
	}
	if (rc)
		mq_err_wrap(rc, "consumer of '%s' partition %u: position",
			    c->t->name, p);
	return rc;
}

/* Start reading @p from @from; it joins the assignment. */
static int open_part(struct mqlog_consumer *c, uint32_t p, uint64_t from)
{
	struct cpart *cp = &c->parts[p];
	int rc;

	if (cp->r)
		return position_at(c, p, from);
	rc = topic_partition(c->t, p, &cp->part);
	if (rc)
		return rc;
	rc = mqlog_reader_open(c->t, p, &cp->r);
	if (rc)
		return rc;
	rc = position_at(c, p, from);
	if (rc) {
		mqlog_reader_close(cp->r);
		cp->r = NULL;
		return rc;
	}
	/* Where we start counts as committed: an auto-commit writes
	 * nothing until something was delivered (a committed offset the
	 * clamp moved is rewritten with the first commit). */
	cp->committed = from == GROUP_NO_OFFSET ? position_of(c, p) : from;
	list_insert(c, p);
	return 0;
}

static void drop_part(struct mqlog_consumer *c, uint32_t p)
{
	struct cpart *cp = &c->parts[p];

	if (!cp->r)
		return;
	mqlog_reader_close(cp->r);
	cp->r = NULL;
	cp->committed = GROUP_NO_OFFSET;
	unhold(cp);
	list_remove(c, p);
}

/* ======================================================================== */
/* Callbacks                                                                */
/* ======================================================================== */

static void callback(struct mqlog_consumer *c, int event, const uint32_t *parts,
		     size_t n)
{
	if (!c->opt.on_rebalance || n == 0)
		return;
	/* The callback may commit, which reuses the scratch arrays: it gets
	 * its own copy. */
	if (parts != c->cb)
		memcpy(c->cb, parts, n * sizeof *parts);
	c->in_callback = true;
	c->opt.on_rebalance(c->opt.rebalance_arg, c, event, c->cb, n);
	c->in_callback = false;
}

/* ======================================================================== */
/* Group work                                                               */
/* ======================================================================== */

static void op_init(struct mqlog_consumer *c, struct group_op *op)
{
	memset(op, 0, sizeof *op);
	op->t = c->t;
	op->group = c->name;
	op->member = c->member;
	op->my_gen = c->generation;
	op->self = c->self;
	op->strategy = (uint32_t)c->opt.strategy;
	op->lease_ms = c->opt.lease_ms;
	op->claimed = c->claimed;
	op->claimed_from = c->claimed_from;
	op->revoke = c->revoke;
	op->released = c->released;
	op->owned = c->owned;
}

static void set_lease(struct mqlog_consumer *c, int64_t until)
{
	__atomic_store_n(&c->lease_until, until, __ATOMIC_RELAXED);
}

/* After an op: our generation and lease. */
static void note_lease(struct mqlog_consumer *c, const struct group_op *op)
{
	c->generation = op->generation;
	set_lease(c, op->lease_until);
	c->next_check = op->now + (int64_t)c->opt.heartbeat_ms;
}

/*
 * Bump the group's word after a change of ours.  When the word then is
 * exactly one past what we last processed, the only change since was ours:
 * nothing for us to look at.
 */
static void bump(struct mqlog_consumer *c)
{
	uint32_t before = c->gw_seen;

	group_word_bump(&c->gw);
	if (MQ_LOAD(c->gw.word) == before + 1)
		c->gw_seen = before + 1;
}

/* The offsets a release commits: positions in the auto-commit modes. */
static void fill_positions(struct mqlog_consumer *c)
{
	for (uint32_t p = 0; p < c->nparts; p++)
		c->pos[p] = GROUP_NO_OFFSET;
	if (c->opt.commit_mode == MQLOG_COMMIT_MANUAL)
		return;
	for (size_t i = 0; i < c->nassigned; i++)
		c->pos[c->assigned[i]] = position_of(c, c->assigned[i]);
}

/* Readers for the partitions an op claimed. */
static int take_claims(struct mqlog_consumer *c, const struct group_op *op)
{
	for (size_t i = 0; i < op->nclaimed; i++) {
		uint64_t done = 0;
		int rc = open_part(c, op->claimed[i], op->claimed_from[i]);
		if (rc)
			return mq_err_wrap(rc,
					   "group '%s' topic '%s' "
					   "partition %u: claim",
					   c->name, c->t->name, op->claimed[i]);
		/* Nacks a previous owner left half done (it crashed between
		 * its commit and its append): finish them before reading. */
		rc = dlq_complete(c->t->db, c->name, c->t->meta.id,
				  op->claimed[i], &done);
		c->stats.recovered += done;
		if (rc) {
			c->intents_pending = true;
			c->intents_retry =
				mono_ms() + (int64_t)c->opt.heartbeat_ms;
		}
	}
	return 0;
}

/* Partitions an op released: their commit is ours now; stop reading. */
static void take_releases(struct mqlog_consumer *c, const struct group_op *op)
{
	for (size_t i = 0; i < op->nreleased; i++)
		drop_part(c, op->released[i]);
}

static uint64_t random_id(void)
{
	uint64_t id = 0;

	while (id == 0) {
		if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
			id = mq_mono_ns() ^ ((uint64_t)getpid() << 40) ^
			     (uint64_t)(uintptr_t)&id;
	}
	return id;
}

/* Join with a fresh member id.  @report: ASSIGNED now, or at first poll. */
static int join(struct mqlog_consumer *c, bool report)
{
	struct group_op op;
	int rc = 0;

	c->gw_seen = MQ_LOAD(c->gw.word);
	for (int tries = 0; tries < 4; tries++) {
		c->member = random_id();
		c->generation = 0;
		op_init(c, &op);
		rc = group_op_join(&op);
		if (rc != MQLOG_EEXIST)
			break;
	}
	if (rc)
		return rc;
	pthread_mutex_lock(&c->hb_mu);
	c->hb_member = c->member;
	pthread_mutex_unlock(&c->hb_mu);
	note_lease(c, &op);
	c->last_commit = op.now;
	c->npending = op.npending;
	rc = take_claims(c, &op);
	bump(c);
	if (rc)
		return rc;
	if (report)
		callback(c, MQLOG_REBALANCE_ASSIGNED, op.claimed, op.nclaimed);
	else
		c->deferred = op.nclaimed > 0;
	return 0;
}

/* We are no longer in the group: report our partitions lost, rejoin. */
static int lost(struct mqlog_consumer *c)
{
	size_t n = c->nassigned;

	memcpy(c->cb, c->assigned, n * sizeof *c->cb);
	while (c->nassigned)
		drop_part(c, c->assigned[0]);
	callback(c, MQLOG_REBALANCE_LOST, c->cb, n);
	return join(c, true);
}

/*
 * The group sync: lease renewal, removal of dead members, release and
 * claim.
 * With a rebalance callback, partitions we lose are reported REVOKED
 * before a second transaction releases them; without one, the sync
 * releases them itself.
 */
static int sync_group(struct mqlog_consumer *c)
{
	struct group_op op, rel;
	size_t nlater = 0;
	int rc;

	c->gw_seen = MQ_LOAD(c->gw.word);
	fill_positions(c);
	op_init(c, &op);
	op.release = c->opt.on_rebalance == NULL;
	op.pos = c->pos;
	rc = group_op_sync(&op);
	if (rc)
		return rc;
	if (op.expelled)
		return lost(c);
	note_lease(c, &op);
	c->npending = op.npending;
	take_releases(c, &op);
	/* What we read but no longer own (a safety net: only a forced reset
	 * takes partitions away, and it removes us): stop at once.  Both
	 * lists are in increasing order. */
	for (size_t i = 0, k = 0; i < c->nassigned;) {
		uint32_t p = c->assigned[i];
		while (k < op.nowned && op.owned[k] < p)
			k++;
		if (k == op.nowned || op.owned[k] != p) {
			drop_part(c, p);
			continue;
		}
		i++;
	}
	rc = take_claims(c, &op);
	if (op.changed)
		bump(c);
	if (rc)
		return rc;
	if (op.nclaimed) {
		memcpy(c->later, op.claimed, op.nclaimed * sizeof *c->later);
		nlater = op.nclaimed;
	}
	if (op.nrevoke) {
		callback(c, MQLOG_REBALANCE_REVOKED, op.revoke, op.nrevoke);
		/* The callback may have seeked or committed: take the
		 * positions now. */
		fill_positions(c);
		op_init(c, &rel);
		rel.pos = c->pos;
		rel.list = op.revoke; /* no op has written it since */
		rel.nlist = op.nrevoke;
		rc = group_op_release(&rel);
		if (rc)
			return rc;
		if (rel.expelled)
			return lost(c);
		set_lease(c, rel.lease_until);
		take_releases(c, &rel);
		if (rel.changed)
			bump(c);
	}
	callback(c, MQLOG_REBALANCE_ASSIGNED, c->later, nlater);
	return 0;
}

/*
 * Group work due before reading.  The heartbeat thread keeps the lease; a
 * lease that ran out anyway (the process stalled) means we may have been
 * removed: sync before delivering anything.  Otherwise act when the
 * group's word moved (or, as a safety net, every heartbeat_ms) and the
 * generation changed or a partition we wait for may be free.
 */
static int maintain(struct mqlog_consumer *c)
{
	int64_t now = mono_ms();
	uint64_t gen = 0;
	uint32_t w;
	int rc;

	if (now >= __atomic_load_n(&c->lease_until, __ATOMIC_RELAXED))
		return sync_group(c);
	w = MQ_LOAD(c->gw.word);
	if (w == c->gw_seen && now < c->next_check)
		return 0;
	c->gw_seen = w;
	c->next_check = now + (int64_t)c->opt.heartbeat_ms;
	rc = index_group_peek(c->t->db->ix, c->name, c->t->meta.id, &gen);
	if (rc && rc != MQLOG_ENOENT)
		return mq_err_wrap(rc, "group '%s' topic '%s'", c->name,
				   c->t->name);
	if (gen != c->generation || c->npending)
		return sync_group(c);
	return 0;
}

/* Commit the positions of the assigned partitions (@all: even those
 * unchanged since the last commit, so that fencing is checked). */
static int commit_positions(struct mqlog_consumer *c, bool all)
{
	struct group_op op;
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < c->nassigned; i++) {
		uint32_t p = c->assigned[i];
		uint64_t pos = position_of(c, p);
		if (!all && pos == c->parts[p].committed)
			continue;
		c->list[n] = p;
		c->offsets[n++] = pos;
	}
	if (n == 0)
		return 0;
	op_init(c, &op);
	op.list = c->list;
	op.offsets = c->offsets;
	op.nlist = n;
	rc = group_op_commit(&op);
	if (rc)
		return rc;
	set_lease(c, op.lease_until);
	c->last_commit = op.now;
	for (size_t i = 0; i < n; i++)
		c->parts[c->list[i]].committed = c->offsets[i];
	return 0;
}

/* AFTER mode: the previous poll's records are processed; commit them. */
static int auto_commit(struct mqlog_consumer *c)
{
	int rc;

	if (c->opt.commit_mode != MQLOG_COMMIT_AFTER)
		return 0;
	if (c->opt.auto_commit_interval_ms &&
	    mono_ms() - c->last_commit <
		    (int64_t)c->opt.auto_commit_interval_ms)
		return 0;
	rc = commit_positions(c, false);
	if (rc == MQLOG_ESTALE)
		return lost(c);
	return rc;
}

/* ======================================================================== */
/* Reading and waiting                                                      */
/* ======================================================================== */

/*
 * The delivery gate, applied to the @g records just read from @cp into
 * @recs: a record of another group (in <topic>.retry) is skipped; a record
 * whose mqlog.due lies ahead is held, and with it the rest of its
 * partition (the reader is put back to it before the next read, and the
 * partition is not read before the due time); a record whose
 * mqlog.expires has passed is skipped and counted.  Skipped records count
 * as consumed.  Records without headers cost one test; the clock is read
 * once per poll, and only when a record has headers.  Returns the number
 * of records kept, compacted at the front of @recs.
 */
static size_t gate(struct mqlog_consumer *c, struct cpart *cp,
		   mqlog_record *recs, size_t g, int64_t *now)
{
	struct dlq_meta m;
	size_t k = 0;

	for (size_t i = 0; i < g; i++) {
		if (MQ_LIKELY(recs[i].header_count == 0))
			goto keep;
		if (dlq_meta_get(&recs[i], &m))
			goto keep; /* malformed headers: the application's */
		if (c->is_retry && m.group.data &&
		    (m.group.len != strlen(c->name) ||
		     memcmp(m.group.data, c->name, m.group.len) != 0)) {
			c->stats.foreign++;
			continue;
		}
		if (m.due == INT64_MIN && m.expires == INT64_MAX)
			goto keep;
		if (*now == 0)
			*now = mq_now_ms();
		if (m.due > *now) {
			int64_t wait = m.due - *now;
			cp->rewind = recs[i].offset;
			cp->hold_until = mono_ms() + wait;
			c->stats.held++;
			break;
		}
		if (m.expires <= *now) {
			c->stats.expired++;
			continue;
		}
keep:
		if (k != i)
			recs[k] = recs[i];
		k++;
	}
	return k;
}

/*
 * One read per assigned partition at most (a second read of a reader would
 * end the validity of the records the first one returned), starting at a
 * partition that moves on at every poll.
 */
static int read_round(struct mqlog_consumer *c, mqlog_record *recs, size_t max,
		      size_t *got)
{
	size_t n = c->nassigned, start = n ? c->rr % n : 0;
	int64_t now = 0, mono = 0;
	int rc = 0;

	*got = 0;
	for (size_t k = 0; k < n; k++)
		c->parts[c->assigned[k]].saved = GROUP_NO_OFFSET;
	for (size_t k = 0; k < n && *got < max; k++) {
		uint32_t p = c->assigned[(start + k) % n];
		struct cpart *cp = &c->parts[p];
		size_t g = 0;

		if (cp->rewind != GROUP_NO_OFFSET) {
			/* A held record: not before its due time, and then
			 * read again from it. */
			if (mono == 0)
				mono = mono_ms();
			if (mono < cp->hold_until)
				continue;
			rc = mqlog_reader_seek(cp->r, cp->rewind);
			if (rc == MQLOG_ERANGE)
				rc = mqlog_reader_seek(cp->r,
						       MQLOG_OFFSET_EARLIEST);
			if (rc) {
				mq_err_wrap(rc, "consumer of '%s' partition %u",
					    c->t->name, p);
				break;
			}
			unhold(cp);
		}
		cp->saved = mqlog_reader_position(cp->r);
		rc = mqlog_reader_read(cp->r, recs + *got, max - *got, &g);
		if (rc == MQLOG_ERANGE) {
			/* Retention removed records before we read them:
			 * continue at what is left. */
			rc = mqlog_reader_seek(cp->r, MQLOG_OFFSET_EARLIEST);
			if (rc == 0) {
				cp->saved = mqlog_reader_position(cp->r);
				rc = mqlog_reader_read(cp->r, recs + *got,
						       max - *got, &g);
			}
		}
		if (rc) {
			mq_err_wrap(rc, "consumer of '%s' partition %u",
				    c->t->name, p);
			break;
		}
		*got += gate(c, cp, recs + *got, g, &now);
	}
	c->rr = start + 1;
	/* Records already read are handed out; the error comes again from
	 * the next poll (the reader stays in front of it). */
	return *got ? 0 : rc;
}

/* Undo a read round (BEFORE mode whose commit failed). */
static void unread(struct mqlog_consumer *c)
{
	for (size_t i = 0; i < c->nassigned; i++) {
		struct cpart *cp = &c->parts[c->assigned[i]];
		if (cp->saved == GROUP_NO_OFFSET)
			continue; /* not read by the last round */
		unhold(cp);
		(void)mqlog_reader_seek(cp->r, cp->saved);
	}
}

static void to_timespec(int64_t ms, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

/* What one sleep waits on. */
struct waitset {
	struct futex_waitv wv[FUTEX_WAITV_MAX];
	uint32_t *cnt[FUTEX_WAITV_MAX]; /* waiter counts to raise */
	size_t n;			/* words */
	int64_t until;			/* CLOCK_MONOTONIC ms */
	bool sliced;			/* some partitions left out */
};

/*
 * Add @c's group word and partitions to @ws.  Returns false when there is
 * something to do already (a partition grew past a reader that is not
 * held, or the group's word moved).  A held partition is not waited on
 * (its appends change nothing before the due time); its due time bounds
 * the sleep instead.
 */
static bool wait_collect(struct mqlog_consumer *c, struct waitset *ws,
			 int64_t now)
{
	size_t na = c->nassigned, room, k, taken = 0;

	if (c->name) {
		uint32_t g = MQ_LOAD(c->gw.word);
		if (g != c->gw_seen)
			return false;
		if (ws->n < FUTEX_WAITV_MAX) {
			ws->wv[ws->n] = (struct futex_waitv){
				.val = g,
				.uaddr = (uintptr_t)c->gw.word,
				.flags = FUTEX_32
			};
			ws->cnt[ws->n++] = c->gw.waiters;
		}
		if (c->next_check < ws->until)
			ws->until = c->next_check;
	}
	room = FUTEX_WAITV_MAX - ws->n;
	for (k = 0; k < na && taken < room; k++) {
		uint32_t p = c->assigned[(c->wait_rr + k) % na];
		struct cpart *cp = &c->parts[p];
		struct pstate *st = cp->part->st;
		uint32_t seen = MQ_LOAD(&st->wake);
		struct pview v;

		if (cp->rewind != GROUP_NO_OFFSET) {
			if (cp->hold_until <= now)
				return false;
			if (cp->hold_until < ws->until)
				ws->until = cp->hold_until;
			continue;
		}
		state_read_view(st, &v);
		if (v.end_offset > mqlog_reader_position(cp->r) ||
		    v.start_offset > mqlog_reader_position(cp->r))
			return false;
		if (cp->part->st_private)
			continue; /* no writer can wake it: nothing comes */
		ws->wv[ws->n] =
			(struct futex_waitv){ .val = seen,
					      .uaddr = (uintptr_t)&st->wake,
					      .flags = FUTEX_32 };
		ws->cnt[ws->n++] = &st->waiters;
		taken++;
	}
	if (k < na) {
		/* More partitions than one wait takes: the next wait covers
		 * the next ones, and this one is a slice. */
		c->wait_rr = (c->wait_rr + k) % na;
		ws->sliced = true;
	}
	return true;
}

/*
 * Sleep until a partition we read grows, the group's word moves, a held
 * record falls due, or @until (CLOCK_MONOTONIC ms; INT64_MAX: no limit).
 * Returns at once when one of them already happened.  A consumer with a
 * retry member waits on the words of both.
 */
static void wait_any(struct mqlog_consumer *c, int64_t until)
{
	struct waitset ws;
	struct timespec ts;
	int64_t now = mono_ms();
	size_t n;
	long r;

	ws.n = 0;
	ws.until = until;
	ws.sliced = false;
	if (!wait_collect(c, &ws, now))
		return;
	if (c->retry && !wait_collect(c->retry, &ws, now))
		return;
	if (c->name && !c->retry && c->retry_check < ws.until)
		ws.until = c->retry_check;
	if (c->intents_pending && c->intents_retry < ws.until)
		ws.until = c->intents_retry;
	until = ws.until;
	n = ws.n;
	if (ws.sliced && now + WAIT_SLICE_MS < until)
		until = now + WAIT_SLICE_MS;
	if (c->waitv_missing && n > 1 && now + WAIT_SLICE_MS < until)
		until = now + WAIT_SLICE_MS;
	if (until <= now)
		return;
	to_timespec(until, &ts);
	if (n == 0) {
		if (until == INT64_MAX)
			ts.tv_sec = (time_t)(now / 1000 + 3600);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
				       NULL) == EINTR)
			;
		return;
	}
	/* Watch the words for a moment first (mqlog_options.wait_spin_us):
	 * what arrives meanwhile is seen without a wake-up's latency. */
	uint32_t *words[FUTEX_WAITV_MAX], seen[FUTEX_WAITV_MAX];
	for (size_t i = 0; i < n; i++) {
		words[i] = (uint32_t *)(uintptr_t)ws.wv[i].uaddr;
		seen[i] = (uint32_t)ws.wv[i].val;
	}
	uint64_t spin = c->t->db->spin_ns;
	if (until != INT64_MAX && spin > (uint64_t)(until - now) * 1000000u)
		spin = (uint64_t)(until - now) * 1000000u;
	if (state_spin(words, seen, n, spin))
		return;
	for (size_t i = 0; i < n; i++)
		__atomic_add_fetch(ws.cnt[i], 1, __ATOMIC_SEQ_CST);
	if (!c->waitv_missing) {
		r = syscall(SYS_futex_waitv, ws.wv, (unsigned)n, 0u,
			    until == INT64_MAX ? NULL : &ts, CLOCK_MONOTONIC);
		if (r < 0 && errno == ENOSYS)
			c->waitv_missing = true;
	}
	if (c->waitv_missing) {
		/* Older kernels: the first word alone, for a slice. */
		struct timespec rel;
		int64_t left = until - now;
		if (n > 1 && left > WAIT_SLICE_MS)
			left = WAIT_SLICE_MS;
		to_timespec(left, &rel);
		syscall(SYS_futex, (uint32_t *)(uintptr_t)ws.wv[0].uaddr,
			FUTEX_WAIT, (uint32_t)ws.wv[0].val,
			until == INT64_MAX && n == 1 ? NULL : &rel, NULL, 0);
	}
	for (size_t i = 0; i < n; i++)
		__atomic_sub_fetch(ws.cnt[i], 1, __ATOMIC_SEQ_CST);
}

/* ======================================================================== */
/* Heartbeat thread                                                         */
/* ======================================================================== */

/*
 * Every heartbeat_ms, renew the lease and remove dead members, off the
 * polling thread: LMDB syncs every write transaction, and that fdatasync
 * must not delay delivery.  The lease is renewed to no later than lease_ms
 * after the application last polled, so a member whose application stopped
 * polling still leaves the group when its lease runs out.  Errors are left
 * to the polling thread, which syncs itself when the lease runs out.
 */
static void *heartbeat_main(void *arg)
{
	struct mqlog_consumer *c = arg;
	struct group_op op;
	struct timespec ts;
	uint64_t member;
	int rc;

	pthread_mutex_lock(&c->hb_mu);
	while (!c->hb_stop) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(c->opt.heartbeat_ms / 1000);
		ts.tv_nsec += (long)(c->opt.heartbeat_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!c->hb_stop &&
		       pthread_cond_timedwait(&c->hb_cv, &c->hb_mu, &ts) !=
			       ETIMEDOUT)
			;
		if (c->hb_stop)
			break;
		member = c->hb_member;
		pthread_mutex_unlock(&c->hb_mu);

		memset(&op, 0, sizeof op);
		op.t = c->t;
		op.group = c->name;
		op.member = member;
		op.self = c->self;
		op.lease_ms = c->opt.lease_ms;
		op.lease_cap =
			__atomic_load_n(&c->last_active, __ATOMIC_RELAXED) +
			(int64_t)c->opt.lease_ms;
		rc = group_op_keepalive(&op);
		if (rc == 0 && op.changed)
			group_word_bump(&c->gw);

		pthread_mutex_lock(&c->hb_mu);
		if (rc == 0 && !op.expelled && c->hb_member == member)
			set_lease(c, op.lease_until);
	}
	pthread_mutex_unlock(&c->hb_mu);
	return NULL;
}

static int heartbeat_start(struct mqlog_consumer *c)
{
	int e = pthread_create(&c->hb, NULL, heartbeat_main, c);

	if (e)
		return mq_err(mq_errno_rc(e),
			      "group '%s' topic '%s': heartbeat thread",
			      c->name, c->t->name);
	c->hb_started = true;
	return 0;
}

static void heartbeat_stop(struct mqlog_consumer *c)
{
	if (!c->hb_started)
		return;
	pthread_mutex_lock(&c->hb_mu);
	c->hb_stop = true;
	pthread_cond_signal(&c->hb_cv);
	pthread_mutex_unlock(&c->hb_mu);
	pthread_join(c->hb, NULL);
	c->hb_started = false;
}

static void touch(struct mqlog_consumer *c)
{
	__atomic_store_n(&c->last_active, mono_ms(), __ATOMIC_RELAXED);
}

/* ======================================================================== */
/* The retry member                                                         */
/* ======================================================================== */

/*
 * A group member of topic T also reads T.retry, as a member of the same
 * group there (its own membership, assignment and committed offsets, so
 * rebalancing, fencing and crash recovery work as for any topic).  It
 * joins once T.retry exists: at open, or when a later look finds it (every
 * heartbeat_ms, from poll), or right after this consumer's first nack
 * created it.
 */
static int retry_open(struct mqlog_consumer *c)
{
	char name[MQLOG_TOPIC_NAME_MAX + 1];
	mqlog_consumer_options o;
	mqlog_topic *rt;
	int rc;

	c->retry_check = mono_ms() + (int64_t)c->opt.heartbeat_ms;
	if (!c->name || c->is_retry || c->retry ||
	    dlq_is_derived_name(c->t->name) ||
	    strlen(c->t->name) + sizeof DLQ_RETRY_SUFFIX - 1 >
		    MQLOG_TOPIC_NAME_MAX)
		return 0;
	snprintf(name, sizeof name, "%s%s", c->t->name, DLQ_RETRY_SUFFIX);
	rc = mqlog_topic_open(c->t->db, name, &rt);
	if (rc == MQLOG_ENOENT)
		return 0;
	if (rc)
		return rc;
	o = c->opt;
	o.group = c->name;
	o.on_rebalance = NULL;
	o.rebalance_arg = NULL;
	rc = mqlog_consumer_open(rt, &o, &c->retry);
	if (rc) {
		mqlog_topic_close(rt);
		return mq_err_wrap(rc, "group '%s': retry topic", c->name);
	}
	c->retry->is_retry = true;
	c->retry->deferred = false;
	c->rt = rt;
	return 0;
}

/* Complete the intents of the partitions we own (after a failed try). */
static int retry_intents(struct mqlog_consumer *c)
{
	struct mqlog_consumer *x[2] = { c, c->retry };
	int rc = 0;

	c->intents_pending = false;
	for (int k = 0; k < 2 && !rc; k++) {
		if (!x[k])
			continue;
		for (size_t i = 0; i < x[k]->nassigned && !rc; i++) {
			uint64_t done = 0;
			rc = dlq_complete(c->t->db, c->name, x[k]->t->meta.id,
					  x[k]->assigned[i], &done);
			c->stats.recovered += done;
		}
	}
	if (rc) {
		c->intents_pending = true;
		c->intents_retry = mono_ms() + (int64_t)c->opt.heartbeat_ms;
	}
	return rc;
}

/* ======================================================================== */
/* Public API                                                               */
/* ======================================================================== */

static void consumer_free(struct mqlog_consumer *c)
{
	if (!c)
		return;
	if (c->retry)
		mqlog_consumer_close(c->retry);
	if (c->rt)
		mqlog_topic_close(c->rt);
	free(c->dl);
	while (c->nassigned)
		drop_part(c, c->assigned[0]);
	group_word_close(&c->gw);
	pthread_cond_destroy(&c->hb_cv);
	pthread_mutex_destroy(&c->hb_mu);
	free(c->name);
	free(c->parts);
	free(c->assigned);
	free(c->pos);
	free(c->claimed);
	free(c->claimed_from);
	free(c->revoke);
	free(c->released);
	free(c->owned);
	free(c->list);
	free(c->offsets);
	free(c->cb);
	free(c->later);
	free(c);
}

int mqlog_consumer_open(mqlog_topic *t, const mqlog_consumer_options *opts,
			mqlog_consumer **out)
{
	mqlog_consumer_options defaults;
	struct mqlog_consumer *c;
	size_t n;
	int rc;

	if (!t || !out)
		return mq_err(MQLOG_EINVAL, "consumer open: NULL argument");
	if (!opts) {
		mqlog_consumer_options_init(&defaults);
		opts = &defaults;
	}
	rc = check_options(opts, t->name);
	if (rc)
		return rc;
	if (opts->group) {
		rc = group_check_name(opts->group, "consumer open");
		if (rc)
			return rc;
		if (t->db->rdonly)
			return mq_err(MQLOG_ERDONLY,
				      "group '%s' topic '%s': a group member "
				      "needs %s opened for writing",
				      opts->group, t->name, t->db->path);
	}
	c = calloc(1, sizeof *c);
	if (!c)
		return mq_err(MQLOG_ENOMEM, "consumer of '%s'", t->name);
	c->t = t;
	c->nparts = t->meta.cfg.partitions;
	c->opt = *opts;
	pthread_mutex_init(&c->hb_mu, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&c->hb_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	touch(c);
	n = c->nparts;
	c->parts = calloc(n, sizeof *c->parts);
	c->assigned = calloc(n, sizeof *c->assigned);
	c->pos = calloc(n, sizeof *c->pos);
	c->claimed = calloc(n, sizeof *c->claimed);
	c->claimed_from = calloc(n, sizeof *c->claimed_from);
	c->revoke = calloc(n, sizeof *c->revoke);
	c->released = calloc(n, sizeof *c->released);
	c->owned = calloc(n, sizeof *c->owned);
	c->list = calloc(n, sizeof *c->list);
	c->offsets = calloc(n, sizeof *c->offsets);
	c->cb = calloc(n, sizeof *c->cb);
	c->later = calloc(n, sizeof *c->later);
	if (!c->parts || !c->assigned || !c->pos || !c->claimed ||
	    !c->claimed_from || !c->revoke || !c->released || !c->owned ||
	    !c->list || !c->offsets || !c->cb || !c->later) {
		rc = mq_err(MQLOG_ENOMEM, "consumer of '%s'", t->name);
		goto fail;
	}
	for (uint32_t p = 0; p < c->nparts; p++) {
		c->parts[p].committed = GROUP_NO_OFFSET;
		c->parts[p].rewind = GROUP_NO_OFFSET;
	}
	if (opts->group) {
		c->name = strdup(opts->group);
		if (!c->name) {
			rc = mq_err(MQLOG_ENOMEM, "consumer of '%s'", t->name);
			goto fail;
		}
		c->opt.group = c->name;
		group_self_get(&c->self);
		rc = group_word_open(t->db, c->name, &c->gw);
		if (rc) {
			mq_err_wrap(rc, "group '%s' topic '%s'", c->name,
				    t->name);
			goto fail;
		}
		rc = join(c, false);
		if (rc)
			goto fail;
		rc = heartbeat_start(c);
		if (rc)
			goto fail;
		rc = retry_open(c);
		if (rc)
			goto fail;
	}
	*out = c;
	return 0;
fail:
	if (c->member) {
		/* Joined, then failed to start reading: give the partitions
		 * back at once rather than when the lease runs out. */
		struct group_op op;
		op_init(c, &op);
		if (group_op_leave(&op) == 0)
			bump(c);
	}
	consumer_free(c);
	return rc;
}

void mqlog_consumer_close(mqlog_consumer *c)
{
	struct group_op op;

	if (!c)
		return;
	heartbeat_stop(c);
	if (c->name && c->member) {
		callback(c, MQLOG_REBALANCE_REVOKED, c->assigned, c->nassigned);
		fill_positions(c);
		op_init(c, &op);
		op.pos = c->pos;
		if (group_op_leave(&op) == 0)
			bump(c);
	}
	consumer_free(c);
}

int mqlog_consumer_assign(mqlog_consumer *c, const uint32_t *partitions,
			  size_t count)
{
	bool *want;
	int rc = 0;

	if (!c || (!partitions && count))
		return mq_err(MQLOG_EINVAL, "consumer assign: NULL argument");
	if (c->name)
		return mq_err(MQLOG_EINVAL,
			      "group '%s' topic '%s': a group member cannot "
			      "assign partitions itself",
			      c->name, c->t->name);
	for (size_t i = 0; i < count; i++)
		if (partitions[i] >= c->nparts)
			return mq_err(MQLOG_EINVAL,
				      "consumer of '%s': partition %u out of "
				      "range (topic has %u)",
				      c->t->name, partitions[i], c->nparts);
	want = calloc(c->nparts, sizeof *want);
	if (!want)
		return mq_err(MQLOG_ENOMEM, "consumer assign");
	for (size_t i = 0; i < count; i++)
		want[partitions[i]] = true;
	for (size_t i = 0; i < c->nassigned;) {
		if (!want[c->assigned[i]]) {
			drop_part(c, c->assigned[i]);
			continue;
		}
		i++;
	}
	for (uint32_t p = 0; p < c->nparts && !rc; p++)
		if (want[p] && !c->parts[p].r)
			rc = open_part(c, p, GROUP_NO_OFFSET);
	free(want);
	return rc;
}

int mqlog_consumer_assignment(mqlog_consumer *c, uint32_t *partitions,
			      size_t max, size_t *count)
{
	if (!c || !count || (!partitions && max))
		return mq_err(MQLOG_EINVAL, "consumer assignment: NULL "
					    "argument");
	for (size_t i = 0; i < c->nassigned && i < max; i++)
		partitions[i] = c->assigned[i];
	*count = c->nassigned;
	return 0;
}

static int not_assigned(const struct mqlog_consumer *c, uint32_t p,
			const char *what)
{
	if (c->name)
		return mq_err(MQLOG_EINVAL,
			      "group '%s' topic '%s' partition %u: %s: not "
			      "assigned to this member",
			      c->name, c->t->name, p, what);
	return mq_err(MQLOG_EINVAL,
		      "consumer of '%s' partition %u: %s: not assigned",
		      c->t->name, p, what);
}

int mqlog_consumer_seek(mqlog_consumer *c, uint32_t partition, uint64_t offset)
{
	int rc;

	if (!c)
		return mq_err(MQLOG_EINVAL, "consumer seek: NULL consumer");
	if (!assigned(c, partition))
		return not_assigned(c, partition, "seek");
	rc = mqlog_reader_seek(c->parts[partition].r, offset);
	if (rc == 0)
		unhold(&c->parts[partition]);
	return rc;
}

int mqlog_consumer_seek_time(mqlog_consumer *c, uint32_t partition,
			     int64_t timestamp_ms)
{
	int rc;

	if (!c)
		return mq_err(MQLOG_EINVAL, "consumer seek: NULL consumer");
	if (!assigned(c, partition))
		return not_assigned(c, partition, "seek");
	rc = mqlog_reader_seek_time(c->parts[partition].r, timestamp_ms);
	if (rc == 0)
		unhold(&c->parts[partition]);
	return rc;
}

int mqlog_consumer_position(mqlog_consumer *c, uint32_t partition,
			    uint64_t *offset)
{
	if (!c || !offset)
		return mq_err(MQLOG_EINVAL, "consumer position: NULL argument");
	if (!assigned(c, partition))
		return not_assigned(c, partition, "position");
	*offset = position_of(c, partition);
	return 0;
}

/*
 * One read round of @c and, in BEFORE mode, the commit of what it read.
 * Returns 0 (records in *got), 1 when the partitions were lost (read
 * again), or an error.
 */
static int read_commit(struct mqlog_consumer *c, mqlog_record *recs, size_t max,
		       size_t *got)
{
	int rc = read_round(c, recs, max, got);

	if (rc || !*got || !c->name ||
	    c->opt.commit_mode != MQLOG_COMMIT_BEFORE)
		return rc;
	rc = commit_positions(c, false);
	if (rc == MQLOG_ESTALE) {
		/* Not ours any more: the records go to the new owner, not
		 * to us. */
		*got = 0;
		rc = lost(c);
		return rc ? rc : 1;
	}
	if (rc) {
		*got = 0;
		unread(c);
	}
	return rc;
}

/* Remember which records of this poll came from the retry topic. */
static int note_retry_records(struct mqlog_consumer *c,
			      const mqlog_record *recs, size_t n)
{
	if (n > c->dl_cap) {
		struct delivered *g = realloc(c->dl, n * sizeof *g);
		if (!g)
			return mq_err(MQLOG_ENOMEM, "consumer of '%s'",
				      c->t->name);
		c->dl = g;
		c->dl_cap = n;
	}
	for (size_t i = 0; i < n; i++) {
		c->dl[i].partition = recs[i].partition;
		c->dl[i].offset = recs[i].offset;
		c->dl[i].headers_raw = recs[i].headers_raw;
	}
	c->ndl = n;
	return 0;
}

int mqlog_consumer_poll(mqlog_consumer *c, mqlog_record *recs, size_t max,
			int timeout_ms, size_t *count)
{
	int64_t deadline;
	size_t got, rgot;
	int rc;

	if (!c || !recs || !count || max == 0)
		return mq_err(MQLOG_EINVAL, "consumer poll: NULL argument or "
					    "max 0");
	*count = 0;
	if (c->in_callback)
		return mq_err(MQLOG_EBUSY,
			      "consumer of '%s': poll from a "
			      "rebalance callback",
			      c->t->name);
	deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
	c->ndl = 0;
	if (c->name) {
		touch(c);
		if (c->deferred) {
			c->deferred = false;
			callback(c, MQLOG_REBALANCE_ASSIGNED, c->assigned,
				 c->nassigned);
		}
		rc = auto_commit(c);
		if (rc)
			return rc;
	}
	if (c->retry) {
		touch(c->retry);
		rc = auto_commit(c->retry);
		if (rc)
			return rc;
	}
	for (;;) {
		if (c->name) {
			rc = maintain(c);
			if (rc)
				return rc;
			if (!c->is_retry && !c->retry &&
			    mono_ms() >= c->retry_check) {
				rc = retry_open(c);
				if (rc)
					return rc;
			}
			if (c->intents_pending && mono_ms() >= c->intents_retry)
				(void)retry_intents(c);
		}
		rgot = 0;
		if (c->retry) {
			rc = maintain(c->retry);
			if (rc)
				return rc;
			rc = read_commit(c->retry, recs, max, &rgot);
			if (rc == 1)
				continue;
			if (rc)
				return rc;
			rc = note_retry_records(c, recs, rgot);
			if (rc) {
				unread(c->retry);
				return rc;
			}
		}
		got = 0;
		if (rgot < max) {
			rc = read_commit(c, recs + rgot, max - rgot, &got);
			if (rc == 1 && !rgot)
				continue;
			if (rc < 0 && !rgot)
				return rc;
			if (rc)
				got = 0; /* the error comes again next poll */
		}
		got += rgot;
		if (got) {
			c->stats.delivered += got;
			*count = got;
			return 0;
		}
		if (mono_ms() >= deadline)
			return 0;
		wait_any(c, deadline);
	}
}

int mqlog_consumer_commit(mqlog_consumer *c)
{
	int rc;

	if (!c)
		return mq_err(MQLOG_EINVAL, "consumer commit: NULL consumer");
	if (!c->name)
		return mq_err(MQLOG_EINVAL,
			      "consumer of '%s': commit needs a "
			      "group",
			      c->t->name);
	rc = commit_positions(c, true);
	if (rc == 0 && c->retry)
		rc = commit_positions(c->retry, true);
	return rc;
}

int mqlog_consumer_commit_offsets(mqlog_consumer *c,
				  const mqlog_partition_offset *offsets,
				  size_t count)
{
	struct group_op op;
	int rc;

	if (!c || (!offsets && count))
		return mq_err(MQLOG_EINVAL, "consumer commit: NULL argument");
	if (!c->name)
		return mq_err(MQLOG_EINVAL,
			      "consumer of '%s': commit needs a "
			      "group",
			      c->t->name);
	if (count > c->nparts)
		return mq_err(MQLOG_EINVAL,
			      "group '%s' topic '%s': %zu "
			      "offsets for %u partitions",
			      c->name, c->t->name, count, c->nparts);
	for (size_t i = 0; i < count; i++) {
		uint32_t p = offsets[i].partition;
		struct pview v;

		if (!assigned(c, p))
			return not_assigned(c, p, "commit");
		state_read_view(c->parts[p].part->st, &v);
		c->list[i] = p;
		c->offsets[i] = clamp_u64(offsets[i].offset, v.start_offset,
					  v.end_offset);
	}
	if (count == 0)
		return 0;
	op_init(c, &op);
	op.list = c->list;
	op.offsets = c->offsets;
	op.nlist = count;
	rc = group_op_commit(&op);
	if (rc)
		return rc;
	set_lease(c, op.lease_until);
	c->last_commit = op.now;
	for (size_t i = 0; i < count; i++)
		c->parts[c->list[i]].committed = c->offsets[i];
	return 0;
}

int mqlog_consumer_committed(mqlog_consumer *c, uint32_t partition,
			     uint64_t *offset)
{
	struct group_snap s;
	int rc;

	if (!c || !offset)
		return mq_err(MQLOG_EINVAL,
			      "consumer committed: NULL argument");
	if (!c->name)
		return mq_err(MQLOG_EINVAL,
			      "consumer of '%s': committed "
			      "offsets need a group",
			      c->t->name);
	if (partition >= c->nparts)
		return mq_err(MQLOG_EINVAL,
			      "group '%s' topic '%s': partition "
			      "%u out of range (topic has %u)",
			      c->name, c->t->name, partition, c->nparts);
	rc = index_group_read(c->t->db->ix, c->name, c->t->meta.id, c->nparts,
			      &s);
	if (rc)
		return mq_err_wrap(rc, "group '%s' topic '%s'", c->name,
				   c->t->name);
	if (s.parts[partition].committed == GROUP_NO_OFFSET)
		rc = mq_err(MQLOG_ENOENT,
			    "group '%s' topic '%s' partition %u: "
			    "no committed offset",
			    c->name, c->t->name, partition);
	else
		*offset = s.parts[partition].committed;
	group_snap_free(&s);
	return rc;
}

int mqlog_consumer_heartbeat(mqlog_consumer *c)
{
	struct group_op op;
	int rc;

	if (!c)
		return mq_err(MQLOG_EINVAL,
			      "consumer heartbeat: NULL consumer");
	if (!c->name)
		return 0;
	touch(c);
	op_init(c, &op);
	rc = group_op_heartbeat(&op);
	if (rc)
		return rc;
	set_lease(c, op.lease_until);
	if (c->retry)
		return mqlog_consumer_heartbeat(c->retry);
	return 0;
}

uint64_t mqlog_consumer_member_id(const mqlog_consumer *c)
{
	return c && c->name ? c->member : 0;
}

uint64_t mqlog_consumer_generation(const mqlog_consumer *c)
{
	return c ? c->generation : 0;
}

/* ======================================================================== */
/* Nack, dead letters, scheduling, replay                                   */
/* ======================================================================== */

/*
 * Move the record @rec, delivered by @src from @partition, to the
 * destination of @cp: the fenced commit past it and the intent in one
 * durable transaction, then the append, then the intent's removal (dlq.c
 * explains why this neither loses nor doubles the record).  @owner
 * collects the statistics and the pending-intent flag.
 */
static int forward(struct mqlog_consumer *owner, struct mqlog_consumer *src,
		   uint32_t partition, uint64_t offset, struct dlq_copy *cp)
{
	struct group_op op;
	struct partition *dp;
	mqlog_topic *dt = NULL;
	uint8_t *buf = NULL;
	struct pview v;
	size_t len = 0;
	int rc;

	if (cp->kind == DLQ_KIND_REPLAY)
		rc = mqlog_topic_open(src->t->db, cp->dest, &dt);
	else
		rc = dlq_ensure_topic(src->t->db, cp->dest,
				      cp->create_partitions, cp->create_sync,
				      &dt);
	if (rc)
		return mq_err_wrap(rc,
				   "group '%s' topic '%s' partition %u "
				   "offset %" PRIu64,
				   src->name, src->t->name, partition, offset);
	cp->dest_partition %= mqlog_topic_partitions(dt);
	rc = topic_partition(dt, cp->dest_partition, &dp);
	if (rc)
		goto out;
	state_read_view(dp->st, &v);
	cp->hint = v.end_offset;
	rc = dlq_intent_encode(cp, &buf, &len);
	if (rc)
		goto out;

	MQ_CRASH_POINT("intent.before_commit");
	op_init(src, &op);
	src->list[0] = partition;
	src->offsets[0] = offset + 1;
	op.list = src->list;
	op.offsets = src->offsets;
	op.nlist = 1;
	op.no_rewind = true;
	op.intent_part = partition;
	op.intent_offset = offset;
	op.intent = buf;
	op.intent_len = len;
	rc = group_op_commit_intent(&op);
	if (rc)
		goto out; /* nothing changed */
	set_lease(src, op.lease_until);
	if (src->parts[partition].committed == GROUP_NO_OFFSET ||
	    src->parts[partition].committed < offset + 1)
		src->parts[partition].committed = offset + 1;

	MQ_CRASH_POINT("intent.after_commit");
	rc = dlq_intent_deliver(src->t->db, buf, len, false, NULL);
	if (rc) {
		owner->intents_pending = true;
		owner->intents_retry =
			mono_ms() + (int64_t)owner->opt.heartbeat_ms;
		mq_err_wrap(rc,
			    "group '%s' topic '%s' partition %u offset "
			    "%" PRIu64 ": committed, its copy to %s is "
			    "pending and is appended by a later poll or "
			    "by the partition's next owner",
			    src->name, src->t->name, partition, offset,
			    cp->dest);
		goto out;
	}
	MQ_CRASH_POINT("intent.after_append");
	if (index_intent_del(src->t->db->ix, src->name, src->t->meta.id,
			     partition, offset)) {
		/* Appended: the leftover intent is found complete later. */
		owner->intents_pending = true;
		owner->intents_retry =
			mono_ms() + (int64_t)owner->opt.heartbeat_ms;
	}
out:
	free(buf);
	mqlog_topic_close(dt);
	return rc;
}

int mqlog_consumer_nack(mqlog_consumer *c, const mqlog_record *rec,
			int64_t delay_ms, const char *reason)
{
	struct mqlog_consumer *src;
	mqlog_topic_config cfg;
	struct dlq_copy cp;
	struct dlq_meta m;
	char dest[MQLOG_TOPIC_NAME_MAX + 1];
	uint32_t failures;
	bool dead;
	int rc;

	if (!c || !rec)
		return mq_err(MQLOG_EINVAL, "consumer nack: NULL argument");
	if (!c->name)
		return mq_err(MQLOG_EINVAL,
			      "consumer of '%s': nack needs a group",
			      c->t->name);
	if (c->is_retry || dlq_is_derived_name(c->t->name))
		return mq_err(MQLOG_EINVAL,
			      "group '%s' topic '%s': records of a retry or "
			      "dead-letter topic are not nacked (consume the "
			      "original topic: it reads its retries itself)",
			      c->name, c->t->name);
	if (strlen(c->t->name) + sizeof DLQ_RETRY_SUFFIX - 1 >
	    MQLOG_TOPIC_NAME_MAX)
		return mq_err(MQLOG_EINVAL,
			      "group '%s' topic '%s': the name leaves no room "
			      "for '%s' (topics that nack take at most %zu "
			      "characters)",
			      c->name, c->t->name, DLQ_RETRY_SUFFIX,
			      MQLOG_TOPIC_NAME_MAX -
				      (sizeof DLQ_RETRY_SUFFIX - 1));
	if (delay_ms != MQLOG_NACK_DEFAULT_DELAY &&
	    (delay_ms < 0 || delay_ms > 86400000))
		return mq_err(MQLOG_EINVAL,
			      "group '%s' topic '%s': nack delay %" PRId64
			      " ms: must be 0..86400000 or "
			      "MQLOG_NACK_DEFAULT_DELAY",
			      c->name, c->t->name, delay_ms);
	if (reason && strlen(reason) > DLQ_REASON_MAX)
		return mq_err(MQLOG_EINVAL,
			      "group '%s' topic '%s': nack reason of %zu "
			      "bytes: at most %d",
			      c->name, c->t->name, strlen(reason),
			      DLQ_REASON_MAX);

	/* Which of our two topics delivered it: the retry records of the
	 * last poll are known by their coordinates and header memory. */
	src = c;
	for (size_t i = 0; i < c->ndl; i++) {
		if (c->dl[i].partition == rec->partition &&
		    c->dl[i].offset == rec->offset &&
		    c->dl[i].headers_raw == rec->headers_raw) {
			src = c->retry;
			break;
		}
	}
	if (!src || !assigned(src, rec->partition))
		return not_assigned(c, rec->partition, "nack");
	if (rec->offset >= position_of(src, rec->partition))
		return mq_err(MQLOG_EINVAL,
			      "group '%s' topic '%s' partition %u: nack of "
			      "offset %" PRIu64 ", which was not delivered "
			      "(position %" PRIu64 ")",
			      c->name, src->t->name, rec->partition,
			      rec->offset, position_of(src, rec->partition));
	rc = dlq_meta_get(rec, &m);
	if (rc)
		return rc;
	if (c->intents_pending)
		(void)retry_intents(c);

	mqlog_topic_config_get(c->t, &cfg);
	failures = (src == c ? 0 : m.attempt) + 1;
	dead = failures >= cfg.max_attempts;
	snprintf(dest, sizeof dest, "%s%s", c->t->name,
		 dead ? DLQ_DLQ_SUFFIX : DLQ_RETRY_SUFFIX);
	if (delay_ms == MQLOG_NACK_DEFAULT_DELAY)
		delay_ms = cfg.retry_delay_ms;
	memset(&cp, 0, sizeof cp);
	cp.kind = dead ? DLQ_KIND_DEAD : DLQ_KIND_RETRY;
	cp.dest = dest;
	cp.dest_partition = rec->partition;
	cp.create_partitions = cfg.partitions;
	cp.create_sync = cfg.sync;
	cp.src_topic = src->t->name;
	cp.src_partition = rec->partition;
	cp.src_offset = rec->offset;
	cp.group = c->name;
	cp.rec = rec;
	cp.origin_topic = src == c ? c->t->name : NULL;
	cp.attempt = failures;
	cp.due = dead ? INT64_MIN : mq_now_ms() + delay_ms;
	cp.reason = reason;
	rc = forward(c, src, rec->partition, rec->offset, &cp);
	if (rc)
		return rc;
	if (dead)
		c->stats.dead_lettered++;
	else
		c->stats.retried++;
	if (!dead && !c->retry)
		(void)retry_open(c); /* our first nack made the topic */
	return 0;
}

int mqlog_consumer_stats_get(const mqlog_consumer *c, mqlog_consumer_stats *out)
{
	if (!c || !out)
		return mq_err(MQLOG_EINVAL, "consumer stats: NULL argument");
	*out = c->stats;
	if (c->retry) {
		const mqlog_consumer_stats *r = &c->retry->stats;
		out->expired += r->expired;
		out->held += r->held;
		out->foreign += r->foreign;
		out->recovered += r->recovered;
	}
	return 0;
}

int mqlog_schedule(mqlog_topic *t, const mqlog_msg *msg, int64_t due_ms,
		   uint64_t *offset)
{
	char name[MQLOG_TOPIC_NAME_MAX + 1], due[24];
	mqlog_topic_config cfg;
	mqlog_header *hs;
	mqlog_topic *rt;
	mqlog_msg m;
	uint32_t part;
	size_t n;
	int rc;

	if (!t || !msg || (!msg->headers && msg->header_count))
		return mq_err(MQLOG_EINVAL, "schedule: NULL argument");
	if (dlq_is_derived_name(t->name) ||
	    strlen(t->name) + sizeof DLQ_RETRY_SUFFIX - 1 >
		    MQLOG_TOPIC_NAME_MAX)
		return mq_err(MQLOG_EINVAL,
			      "schedule on '%s': not for a retry or "
			      "dead-letter topic, nor a name over %zu "
			      "characters",
			      t->name,
			      MQLOG_TOPIC_NAME_MAX -
				      (sizeof DLQ_RETRY_SUFFIX - 1));
	for (size_t i = 0; i < msg->header_count; i++) {
		const mqlog_bytes *k = &msg->headers[i].key;
		if (k->len >= sizeof DLQ_H_PREFIX - 1 && k->data &&
		    !memcmp(k->data, DLQ_H_PREFIX, sizeof DLQ_H_PREFIX - 1) &&
		    !(k->len == sizeof DLQ_H_EXPIRES - 1 &&
		      !memcmp(k->data, DLQ_H_EXPIRES, k->len)))
			return mq_err(MQLOG_EINVAL,
				      "schedule on '%s': header %zu: names "
				      "starting with '%s' are reserved",
				      t->name, i, DLQ_H_PREFIX);
	}
	mqlog_topic_config_get(t, &cfg);
	snprintf(name, sizeof name, "%s%s", t->name, DLQ_RETRY_SUFFIX);
	rc = dlq_ensure_topic(t->db, name, cfg.partitions, cfg.sync, &rt);
	if (rc)
		return mq_err_wrap(rc, "schedule on '%s'", t->name);
	n = msg->header_count + 3;
	hs = malloc(n * sizeof *hs);
	if (!hs) {
		mqlog_topic_close(rt);
		return mq_err(MQLOG_ENOMEM, "schedule on '%s'", t->name);
	}
	if (msg->header_count)
		memcpy(hs, msg->headers, msg->header_count * sizeof *hs);
	snprintf(due, sizeof due, "%" PRId64, due_ms);
	hs[n - 3] = (mqlog_header){ { DLQ_H_DUE, sizeof DLQ_H_DUE - 1 },
				    { due, strlen(due) } };
	hs[n - 2] = (mqlog_header){ { DLQ_H_ATTEMPT, sizeof DLQ_H_ATTEMPT - 1 },
				    { "0", 1 } };
	hs[n - 1] = (mqlog_header){ { DLQ_H_OTOPIC, sizeof DLQ_H_OTOPIC - 1 },
				    { t->name, strlen(t->name) } };
	m = *msg;
	m.headers = hs;
	m.header_count = n;
	part = msg->key.data ?
		       mqlog_partition_for_key(msg->key.data, msg->key.len,
					       cfg.partitions) :
		       (uint32_t)(mq_mono_ns() / 1000u % cfg.partitions);
	rc = mqlog_append(rt, part % mqlog_topic_partitions(rt), &m, 1,
			  MQLOG_SYNC_DEFAULT, offset);
	free(hs);
	mqlog_topic_close(rt);
	return rc;
}

int mqlog_dlq_replay(mqlog *db, const char *topic, const char *group,
		     uint64_t max, uint64_t *replayed)
{
	char dname[MQLOG_TOPIC_NAME_MAX + 1], dest[MQLOG_TOPIC_NAME_MAX + 1];
	mqlog_consumer_options o;
	mqlog_consumer *c = NULL;
	mqlog_topic *main_t = NULL, *dt = NULL;
	mqlog_record recs[64];
	uint64_t done = 0;
	size_t n;
	int rc;

	if (replayed)
		*replayed = 0;
	if (!db || !topic)
		return mq_err(MQLOG_EINVAL, "dlq replay: NULL argument");
	if (!group)
		group = "mqlog.replay";
	if (!mqlog_topic_name_valid(topic) || dlq_is_derived_name(topic) ||
	    strlen(topic) + sizeof DLQ_DLQ_SUFFIX - 1 > MQLOG_TOPIC_NAME_MAX)
		return mq_err(MQLOG_EINVAL,
			      "dlq replay: '%s' is not a topic that can have "
			      "a dead-letter topic",
			      topic);
	rc = mqlog_topic_open(db, topic, &main_t);
	if (rc)
		return mq_err_wrap(rc, "dlq replay");
	snprintf(dname, sizeof dname, "%s%s", topic, DLQ_DLQ_SUFFIX);
	rc = mqlog_topic_open(db, dname, &dt);
	if (rc) {
		mq_err_wrap(rc, "dlq replay: dead-letter topic");
		goto out;
	}
	mqlog_consumer_options_init(&o);
	o.group = group;
	o.commit_mode = MQLOG_COMMIT_MANUAL;
	rc = mqlog_consumer_open(dt, &o, &c);
	if (rc)
		goto out;
	while (max == 0 || done < max) {
		rc = mqlog_consumer_poll(c, recs, 64, 0, &n);
		if (rc || n == 0)
			break;
		for (size_t i = 0; i < n && (max == 0 || done < max); i++) {
			struct dlq_copy cp;
			mqlog_bytes v = { NULL, 0 };
			int64_t op = -1;
			mqlog_topic *ot = NULL;

			/* Back to the topic it came from, when it still
			 * exists; otherwise to @topic. */
			snprintf(dest, sizeof dest, "%s", topic);
			if (mqlog_record_header(&recs[i], DLQ_H_OTOPIC,
						sizeof DLQ_H_OTOPIC - 1,
						&v) == 1 &&
			    v.data && v.len > 0 && v.len < sizeof dest) {
				char cand[MQLOG_TOPIC_NAME_MAX + 1];
				memcpy(cand, v.data, v.len);
				cand[v.len] = '\0';
				if (mqlog_topic_name_valid(cand) &&
				    mqlog_topic_open(db, cand, &ot) == 0) {
					memcpy(dest, cand, v.len + 1);
					mqlog_topic_close(ot);
				}
			}
			if (mqlog_record_header(&recs[i], DLQ_H_OPART,
						sizeof DLQ_H_OPART - 1,
						&v) == 1 &&
			    v.data) {
				char num[24];
				size_t k = v.len < sizeof num - 1 ?
						   v.len :
						   sizeof num - 1;
				memcpy(num, v.data, k);
				num[k] = '\0';
				op = strtoll(num, NULL, 10);
			}
			memset(&cp, 0, sizeof cp);
			cp.kind = DLQ_KIND_REPLAY;
			cp.dest = dest;
			cp.dest_partition =
				op >= 0 ? (uint32_t)op :
				recs[i].key.data ?
					  mqlog_partition_for_key(
						  recs[i].key.data,
						  recs[i].key.len,
						  mqlog_topic_partitions(
							  main_t)) :
					  0;
			cp.src_topic = dname;
			cp.src_partition = recs[i].partition;
			cp.src_offset = recs[i].offset;
			cp.group = group;
			cp.rec = &recs[i];
			cp.due = INT64_MIN;
			rc = forward(c, c, recs[i].partition, recs[i].offset,
				     &cp);
			if (rc)
				goto out;
			done++;
		}
	}
out:
	if (replayed)
		*replayed = done;
	mqlog_consumer_close(c);
	mqlog_topic_close(dt);
	mqlog_topic_close(main_t);
	return rc;
}
