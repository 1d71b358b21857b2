/*
 * group.h - consumer groups inside the library: the membership and
 * rebalance protocol (group.c) as used by consumers (consumer.c).
 *
 * Every operation below is one LMDB write transaction over the whole group
 * (index_group_update), so all members of all processes see one serial
 * history of the group.  The protocol in brief:
 *
 *   join      remove dead members, add ourselves, new generation, new
 *             target assignment, claim our share that is free
 *   sync      renew our lease (the heartbeat), remove dead members (new
 *             generation when any), release what the target gives to
 *             others (or report it, to release after the REVOKED
 *             callback), claim our share that is free
 *   release   commit the position of partitions we lose and free them
 *   leave     commit and free all we own, remove ourselves, new generation
 *   commit    fenced: only a live member that owns the partition
 *   keepalive (background thread) renew our lease, remove dead members
 *             (new generation when any); the polls act on the change
 *
 * A partition changes hands only through "owner = 0": its owner frees it
 * (committing the next offset it would have delivered) or dies; the new
 * owner claims it only when free and starts at the committed offset.
 * Hence, without crashes, nothing is delivered twice and nothing skipped.
 */
#ifndef MQLOG_GROUP_H
#define MQLOG_GROUP_H

#include "engine.h"

/* Who the calling process is, for the liveness checks of members. */
struct group_self {
	int32_t pid;	    /* getpid() */
	uint64_t pid_start; /* its start time (clock ticks since boot) */
	uint64_t pidns;	    /* inode of its pid namespace */
	uint64_t boot;	    /* hash of the kernel's boot id */
};

/* group_self_get - this process (recomputed after a fork). */
void group_self_get(struct group_self *out);

/*
 * group_member_dead - why @m is dead (a static string), or NULL when it is
 * alive: lease run out at @now (CLOCK_MONOTONIC ms), started under another
 * boot, or (same pid namespace) its process is gone, a zombie, or its pid
 * now belongs to a process with another start time.
 */
const char *group_member_dead(const struct group_member *m, int64_t now,
			      const struct group_self *self);

/* group_check_name - MQLOG_EINVAL (message from @what) for a bad name. */
int group_check_name(const char *group, const char *what);

/*
 * group_assign - compute s->target from s->members (all live), s->nparts,
 * s->strategy and, for STICKY, the previous s->target.  Sorts s->members
 * by (joined, id).  Deterministic.  MQLOG_ENOMEM only for STICKY.
 */
int group_assign(struct group_snap *s);

/* ------------------------------------------------------------------------ */
/* The group's wake-up word: DIR/groups/GROUP                               */
/* ------------------------------------------------------------------------ */

/*
 * A 4 KiB file mapped MAP_SHARED by every member: u32 word at byte 0,
 * bumped after every change of generation or ownership; u32 waiters at
 * byte 4, the number of threads blocked on it (the bump makes the
 * FUTEX_WAKE syscall only when there are some).  Not durable and never
 * reset: only changes of the word matter.
 */
struct group_word {
	void *map;	   /* the mapping, or NULL */
	uint32_t *word;	   /* change counter (futex word) */
	uint32_t *waiters; /* threads waiting on it */
};

int group_word_open(struct mqlog *db, const char *group, struct group_word *w);
void group_word_close(struct group_word *w);
void group_word_bump(struct group_word *w);

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

/*
 * Inputs and outputs of one operation.  The caller fills the inputs and
 * gives output arrays of nparts entries; the outputs are reset at every
 * run of the transaction body (it may be retried).
 */
struct group_op {
	/* inputs */
	struct mqlog_topic *t;	 /* the topic */
	const char *group;	 /* group name */
	uint64_t member;	 /* our member id */
	uint64_t my_gen;	 /* generation we last synced at (messages) */
	struct group_self self;	 /* our process */
	uint32_t strategy;	 /* join: our strategy */
	uint32_t lease_ms;	 /* lease length */
	int64_t now;		 /* CLOCK_MONOTONIC ms, set by the op */
	int64_t lease_cap;	 /* renew the lease to no later than this
				  * (CLOCK_MONOTONIC ms); 0: no cap */
	bool release;		 /* sync: release lost partitions at once */
	const uint64_t *pos;	 /* [nparts] offset to commit when releasing
				  * partition p, or GROUP_NO_OFFSET */
	const uint32_t *list;	 /* release / commit: partitions */
	const uint64_t *offsets; /* commit: their offsets */
	size_t nlist;		 /* entries in list (and offsets) */
	bool no_rewind;		 /* commit: never move a committed offset
				  * back (a nack commits past one record) */
	uint32_t intent_part;	 /* commit_intent: source partition */
	uint64_t intent_offset;	 /* commit_intent: source offset */
	const void *intent;	 /* commit_intent: the intent's bytes */
	size_t intent_len;	 /* commit_intent: their number */

	/* outputs */
	uint64_t generation;	/* group generation after the op */
	bool expelled;		/* we are not in the group */
	bool changed;		/* generation moved or a partition was
				 * freed: bump the group's word */
	int64_t lease_until;	/* our new lease end */
	uint32_t *claimed;	/* [nparts] partitions claimed now */
	uint64_t *claimed_from; /* [nparts] their committed offsets */
	size_t nclaimed;
	uint32_t *revoke; /* [nparts] owned, to release (sync without
			   * release) */
	size_t nrevoke;
	uint32_t *released; /* [nparts] freed by this op */
	size_t nreleased;
	uint32_t *owned; /* [nparts] owned after the op */
	size_t nowned;
	size_t npending; /* our share still owned by others */
};

int group_op_join(struct group_op *op);
int group_op_sync(struct group_op *op);
int group_op_release(struct group_op *op);
int group_op_leave(struct group_op *op);
int group_op_commit(struct group_op *op);
/* A fenced commit that also stores a delivery intent, in one durable
 * transaction (dlq.c explains why). */
int group_op_commit_intent(struct group_op *op);
int group_op_heartbeat(struct group_op *op);
int group_op_keepalive(struct group_op *op);

#endif /* MQLOG_GROUP_H */
