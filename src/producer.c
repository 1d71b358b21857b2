/*
 * producer.c - producers: partitioners, per-partition open batches, the
 * leader/follower append protocol, the background thread (linger timer and
 * delivery callbacks), flush and close.
 *
 * BATCHES
 *
 * Each partition a producer has used has two batches: the open one, which
 * takes records, and one that is either being appended (in flight) or idle.
 * A batch is the encoded batch itself: record_encode() writes each record,
 * in the on-disk format (record.c), into the batch's buffer right after
 * room for the header, and the leader completes the header with
 * batch_finish() and hands the buffer to partition_append_encoded().  So a
 * record is copied once, into memory the producer owns and reuses (no
 * allocation per record in steady state), and never encoded twice.
 *
 *   produce --encode--> open batch --seal--> in flight --append--> log
 *                          ^                                 |
 *                          +------------- reset -------------+
 *
 * At most one batch per partition is in flight, which keeps the records of a
 * partition in the order in which they entered the producer.  While it is
 * being appended, new records gather in the open batch; so under load the
 * batches grow by themselves, and the callers whose records share a batch
 * share its pwrite and its fdatasync.  A batch is sealed when it holds
 * batch_records records or about batch_bytes bytes; the next record of that
 * partition then waits until the batch is taken (backpressure), except a
 * null-key record, which moves to the new sticky partition instead.
 *
 * WHO APPENDS (LEADER/FOLLOWER)
 *
 * A batch is appended by whichever thread first finds it ready while its
 * partition has nothing in flight: that thread becomes the leader, moves
 * the open batch to in-flight, drops the partition lock, appends, retakes
 * the lock, stores each record's outcome and wakes the partition's waiters.
 *
 *   - The thread whose record fills a batch appends it before it returns,
 *     asynchronous or not.  That is the hot path of a busy producer, and it
 *     has no thread hand-off at all: the batch's bytes are still in that
 *     CPU's cache, and nobody sleeps or wakes anybody.  (Measured on a small
 *     virtual machine, handing every full batch to a writer thread cost
 *     more in wake-ups and cache-line traffic than it saved.)
 *   - A thread in mqlog_produce() leads its own batch as soon as nothing is
 *     in flight, and otherwise follows: it sleeps on the partition's
 *     condition variable until its batch is done.  A lone synchronous
 *     caller appends its record itself (the lowest latency there is); under
 *     load, synchronous callers fall into the next batch and share it.
 *     Synchronous records never linger.
 *   - A thread that finds the open batch sealed and nothing in flight
 *     appends it before adding its own record; with something in flight it
 *     waits (backpressure).
 *   - mqlog_producer_flush() and _close() lead whatever is open.
 *   - The background thread appends batches of asynchronous records that
 *     did not fill up: at their linger deadline, or at once with linger 0.
 *     It is told about a partition when its batch gets a first asynchronous
 *     record, and then keeps the partition in its care (a list, woken by
 *     the earliest deadline) so that a steady stream of full batches costs
 *     it nothing.
 *
 * Why a background thread at all?  An asynchronous caller must not wait for
 * an append, so someone else has to append the batch it leaves behind when
 * it is not full (linger_ms, or the end of a burst); and the delivery
 * callbacks need a thread of their own, one that never runs inside a
 * produce call (the application may hold, while it produces, the lock its
 * callback takes), runs them one at a time, and in order.  A producer used
 * only synchronously never starts it.
 *
 * DELIVERY
 *
 * The leader stores outcomes of synchronous records in the callers' stack
 * slots (struct pwait) and marks them done under the partition lock.  The
 * outcomes of asynchronous records go to the delivery queue as runs
 * (partition, first offset, count, outcome) plus one opaque pointer per
 * record; only the background thread drains it.  Batches of one partition
 * complete in order and are queued in order, so the callbacks of one
 * partition come in offset order.  While reports keep coming the thread
 * wakes on a 1 ms tick rather than at every batch (a wake-up costs several
 * microseconds, more in a virtual machine).  flush waits until every batch
 * it covers is done and the queue has been drained past the point it had
 * reached, so it returns only after the callbacks of its records.
 *
 * CLOSE
 *
 * close sets the state to closing under the producer lock, then flushes.
 * Every produce call checks the state under the partition lock before it
 * adds its record, and flush takes each partition lock after the state
 * changed: a record either got in before (and flush appends it) or its call
 * fails with MQLOG_ECLOSED.  Nothing is dropped silently.
 *
 * LOCKS
 *
 * Order: a partition's mu, then prod->mu.  No lock is held during an
 * append, a partitioner or a delivery callback.  The in-flight batch and
 * the partition's scratch arrays belong to the leader (the one thread that
 * set inflight) until it clears inflight under mu.
 */
#include "engine.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ======================================================================== */
/* Limits and defaults                                                      */
/* ======================================================================== */

#define PROD_DEFAULT_BATCH_RECORDS 1000u
#define PROD_DEFAULT_BATCH_BYTES   (1u << 20)
#define PROD_MAX_BATCH_RECORDS	   1000000u
#define PROD_MAX_LINGER_MS	   3600000u

#define PROD_ERRMSG 512
/* Delivery reports the queue holds without allocating. */
#define PROD_DQ_MIN 1024u
/* Reports that wake a ticking background thread before its tick. */
#define PROD_DQ_WAKE 4096u
/* Longest a delivery report waits while reports keep coming. */
#define PROD_TICK_NS 1000000u

enum prod_state {
	PROD_OPEN = 0,	  /* taking records */
	PROD_CLOSING = 1, /* close in progress: no new records */
	PROD_CLOSED = 2,  /* closed: every call fails with ECLOSED */
};

/* ======================================================================== */
/* Structures                                                               */
/* ======================================================================== */

/* Where a synchronous caller waits for its record's outcome (its stack). */
struct pwait {
	int rc;		       /* outcome: 0 or the error */
	uint64_t offset;       /* its offset when rc == 0 */
	bool done;	       /* outcome stored (partition mu) */
	char msg[PROD_ERRMSG]; /* message when rc != 0 */
};

/* The outcome of one record of a batch that was appended in pieces. */
struct pout {
	uint64_t offset; /* offset when rc == 0 */
	int rc;		 /* outcome */
};

/* How the records of a batch carry their timestamps. */
enum ts_mode {
	TS_NONE = 0,	 /* empty batch */
	TS_NOW = 1,	 /* all MQLOG_TIMESTAMP_NOW: stamped at append */
	TS_EXPLICIT = 2, /* all given by the callers */
};

/*
 * A batch: its encoding, built record by record in @buf (BATCH_HEADER_SIZE
 * bytes left for the header, which the leader fills with batch_finish()
 * just before the append), and one slot per record.
 */
struct pbatch {
	uint64_t seq; /* number of the batch in its partition, from 1 */
	uint8_t *buf; /* the encoded batch */
	size_t used;  /* bytes used at buf, header included */
	size_t cap;   /* bytes allocated at buf */
	/*
	 * Who waits for each record, kept only when someone does.  Records
	 * [0, nopq) have their opaque in opq (NULL for synchronous ones),
	 * filled when there is a delivery callback; records [0, nwaits) have
	 * their caller's slot in waits (NULL for asynchronous ones), filled
	 * once a synchronous record arrives.  Records past either are
	 * asynchronous with no opaque.
	 */
	void **opq;	      /* opaques */
	struct pwait **waits; /* synchronous callers */
	uint32_t nopq;	      /* entries filled at opq */
	uint32_t nwaits;      /* entries filled at waits */
	uint32_t opq_cap;     /* entries allocated at opq */
	uint32_t waits_cap;   /* entries allocated at waits */
	uint32_t count;	      /* records */
	int ts_mode;	      /* enum ts_mode */
	int64_t first_ts;     /* TS_EXPLICIT: timestamp of record 0 */
	int64_t max_ts;	      /* TS_EXPLICIT: largest timestamp */
	uint64_t deadline_ns; /* monotonic: linger expires (set by record 0) */
	uint32_t nasync;      /* records produced asynchronously */
	uint32_t nsync;	      /* records produced synchronously */
	bool sealed;	      /* full: takes no more records */
	/* The outcome, set by the leader: */
	int rc;			  /* 0, or the error of every record */
	uint64_t base;		  /* offset of record 0 when rc == 0 */
	bool split;		  /* per-record outcomes are in the leader's
				     pp->outs (REJECT, appended in pieces) */
	char errmsg[PROD_ERRMSG]; /* first failure of its append */
};

/* Delivery reports for @count consecutive records of one partition. */
struct dlv {
	uint32_t partition; /* partition */
	uint32_t count;	    /* records */
	uint64_t base;	    /* offset of the first when rc == 0 */
	int rc;		    /* outcome of every one of them */
	char *msg;	    /* malloc'd message when rc != 0 (may be NULL) */
	size_t opq; /* their opaques, from this index of the opq array */
};

/* One half of the delivery queue: filled by leaders, or being delivered. */
struct dhalf {
	struct dlv *runs; /* runs of reports, in completion order */
	size_t nruns;	  /* runs at runs */
	size_t runs_cap;  /* runs allocated */
	void **opq;	  /* the opaques of their records */
	size_t nopq;	  /* entries at opq: records queued */
	size_t opq_cap;	  /* entries allocated */
};

/* A producer's state for one partition, created on first use. */
struct ppart {
	struct mqlog_producer *prod; /* owner */
	uint32_t id;		     /* partition number */
	pthread_mutex_t mu;	     /* guards the fields up to "leader" */
	pthread_cond_t cond;	     /* a batch completed or was sealed */
	struct pbatch bat[2];	     /* the two batches */
	struct pbatch *open;	     /* the one taking records */
	struct pbatch *inflight;     /* the one being appended, or NULL */
	uint64_t done_seq;	     /* batches up to it have outcomes */
	uint64_t flush_seq;	     /* batches up to it must go now */
	/* Owned by the leader (the thread that set inflight): */
	mqlog_msg *msgs;   /* a refused batch, decoded (REJECT) */
	struct pout *outs; /* and its outcomes */
	size_t msgs_cap;   /* entries allocated at both */
	/* Guarded by prod->mu: */
	bool queued;		    /* in the background thread's care */
	struct ppart *next_pending; /* pending list link */
};

struct mqlog_producer {
	struct mqlog_topic *t;	  /* topic (borrowed) */
	uint32_t nparts;	  /* its partitions */
	mqlog_producer_options o; /* options as given */
	uint32_t batch_records;	  /* effective record limit of a batch */
	uint64_t batch_bytes;	  /* effective byte target of a batch */
	uint64_t linger_ns;	  /* linger_ms in ns */
	uint32_t max_record;	  /* the topic's max_record_bytes */
	bool split_full;	  /* REJECT: append the prefix that fits */
	struct ppart **parts;	  /* per partition, created on first use */
	uint32_t sticky;	  /* atomic: the sticky partition */
	uint64_t rng;		  /* atomic: counter for sticky choices */
	int state;		  /* atomic: enum prod_state */
	int fatal_rc;		  /* atomic: 0 or the error that stopped it */
	uint32_t sender_started;  /* atomic: the background thread runs */
	/* Every produce call reads the fields above; the background thread
	 * writes mu and the fields below all the time: keep them apart. */
	char pad_[64];

	pthread_mutex_t mu;	     /* guards everything below */
	pthread_cond_t cond;	     /* wakes the background thread */
	pthread_cond_t dcond;	     /* the delivery queue was drained */
	char fatal_msg[PROD_ERRMSG]; /* message of fatal_rc */
	pthread_t sender;	     /* the background thread */
	bool stop;		     /* ask it to exit */
	bool sender_ticking;	     /* it sleeps at most PROD_TICK_NS */
	bool kick;		     /* new work since its last scan */
	struct ppart *pending;	     /* partitions with asynchronous records */
	uint64_t next_deadline;	     /* earliest linger deadline among them */
	struct dhalf dq;	     /* delivery reports being queued */
	struct dhalf dq_spare;	     /* the half being delivered, or idle */
	uint64_t dq_pushed;	     /* reports (records) ever queued */
	uint64_t dq_done;	     /* reports ever delivered */
	int async_rc; /* first async failure since the last flush */
	char async_msg[PROD_ERRMSG]; /* its message */
};

/* The producer whose background thread this is, if any. */
static _Thread_local struct mqlog_producer *tl_sender;

/* ======================================================================== */
/* Small helpers                                                            */
/* ======================================================================== */

static const char *pname(const struct mqlog_producer *p)
{
	return p->t->name;
}

static void copy_msg(char *dst, const char *src)
{
	snprintf(dst, PROD_ERRMSG, "%s", src);
}

/*
 * Set this thread's message to @msg, captured from another thread's
 * mqlog_errmsg().  mq_err() appends ": <strerror>", which such a message
 * already ends with; take it off first rather than say it twice.
 */
static int err_copy(int rc, const char *msg)
{
	const char *s = mqlog_strerror(rc);
	size_t n = strlen(msg), k = strlen(s);

	if (n >= k + 2 && strcmp(msg + n - k, s) == 0 &&
	    msg[n - k - 2] == ':' && msg[n - k - 1] == ' ')
		return mq_err(rc, "%.*s", (int)(n - k - 2), msg);
	return mq_err(rc, "%s", msg);
}

/* Errors after which no append through this producer can succeed. */
static bool fatal_code(int rc)
{
	return rc == MQLOG_EFAILED || rc == MQLOG_EDELETED ||
	       rc == MQLOG_ERDONLY;
}

static uint64_t splitmix64(uint64_t x)
{
	x += UINT64_C(0x9E3779B97F4A7C15);
	x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
	return x ^ (x >> 31);
}

static void cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

/* Wait on @c until @deadline_ns on the monotonic clock. */
static void cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m,
			    uint64_t deadline_ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
	ts.tv_nsec = (long)(deadline_ns % 1000000000u);
	(void)pthread_cond_timedwait(c, m, &ts);
}

static int closed_err(const struct mqlog_producer *p, const char *what)
{
	return mq_err(MQLOG_ECLOSED, "%s: producer for topic %s is %s", what,
		      pname(p),
		      MQ_LOAD(&p->state) == PROD_CLOSED ? "closed" : "closing");
}

/* The error that stopped the producer, with its message. */
static int fatal_err(struct mqlog_producer *p, int rc, const char *what)
{
	char msg[PROD_ERRMSG];

	pthread_mutex_lock(&p->mu);
	copy_msg(msg, p->fatal_msg);
	pthread_mutex_unlock(&p->mu);
	return mq_err(rc,
		      "%s: producer for topic %s stopped after an earlier "
		      "error (%s)",
		      what, pname(p), msg);
}

static void set_fatal(struct mqlog_producer *p, int rc, const char *msg)
{
	pthread_mutex_lock(&p->mu);
	if (!MQ_LOAD_RELAXED(&p->fatal_rc)) {
		copy_msg(p->fatal_msg, msg);
		MQ_STORE(&p->fatal_rc, rc);
	}
	pthread_mutex_unlock(&p->mu);
}

/* ======================================================================== */
/* Partitioners                                                             */
/* ======================================================================== */

uint32_t mqlog_murmur2(const void *key, size_t len)
{
	/* Kafka's Utils.murmur2, in 32-bit unsigned arithmetic, which gives
	 * the same bits as Java's signed int. */
	const uint32_t m = 0x5bd1e995u;
	const unsigned char *d = key;
	uint32_t h = 0x9747b28cu ^ (uint32_t)len;
	size_t i, n4 = len / 4;

	if (!d)
		len = n4 = 0, h = 0x9747b28cu;
	for (i = 0; i < n4; i++) {
		const unsigned char *b = d + 4 * i;
		uint32_t k = (uint32_t)b[0] | (uint32_t)b[1] << 8 |
			     (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
		k *= m;
		k ^= k >> 24;
		k *= m;
		h *= m;
		h ^= k;
	}
	switch (len % 4) {
	case 3:
		h ^= (uint32_t)d[(len & ~(size_t)3) + 2] << 16;
		/* fall through */
	case 2:
		h ^= (uint32_t)d[(len & ~(size_t)3) + 1] << 8;
		/* fall through */
	case 1:
		h ^= (uint32_t)d[len & ~(size_t)3];
		h *= m;
		break;
	default:
		break;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return h;
}

uint32_t mqlog_partition_for_key_murmur2(const void *key, size_t len,
					 uint32_t partitions)
{
	if (partitions == 0)
		return 0;
	return (mqlog_murmur2(key, len) & 0x7fffffffu) % partitions;
}

/*
 * Move the sticky partition away from @from, if it is still there: called
 * when a batch of @from is sealed or taken, so that null-key records start
 * their next batch elsewhere.  The compare-and-swap makes one move per
 * batch however many threads see it.
 */
static void sticky_next(struct mqlog_producer *p, uint32_t from)
{
	uint32_t cur = from, next;
	uint64_t r;

	if (p->nparts < 2 || MQ_LOAD_RELAXED(&p->sticky) != from)
		return;
	r = splitmix64(__atomic_fetch_add(&p->rng, 1, __ATOMIC_RELAXED));
	next = (uint32_t)((from + 1 + r % (p->nparts - 1)) % p->nparts);
	__atomic_compare_exchange_n(&p->sticky, &cur, next, false,
				    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* Pick the partition of @m; *sticky says it came from the sticky choice. */
static int choose(struct mqlog_producer *p, const mqlog_msg *m, uint32_t want,
		  uint32_t *out, bool *sticky)
{
	int r;

	*sticky = false;
	if (want != MQLOG_PARTITION_AUTO) {
		if (want >= p->nparts)
			return mq_err(MQLOG_EINVAL,
				      "produce %s: partition %" PRIu32
				      " out of range (topic has %" PRIu32 ")",
				      pname(p), want, p->nparts);
		*out = want;
		return 0;
	}
	switch (p->o.partitioner) {
	case MQLOG_PARTITIONER_CUSTOM:
		r = p->o.partition_fn(p->o.partition_arg, m, p->nparts);
		if (r < 0)
			return mq_err(r, "produce %s: custom partitioner",
				      pname(p));
		if ((uint32_t)r >= p->nparts)
			return mq_err(MQLOG_EINVAL,
				      "produce %s: custom partitioner chose "
				      "partition %d (topic has %" PRIu32 ")",
				      pname(p), r, p->nparts);
		*out = (uint32_t)r;
		return 0;
	case MQLOG_PARTITIONER_MURMUR2:
		if (m->key.data) {
			*out = mqlog_partition_for_key_murmur2(
				m->key.data, m->key.len, p->nparts);
			return 0;
		}
		break;
	default:
		if (m->key.data) {
			*out = mqlog_partition_for_key(m->key.data, m->key.len,
						       p->nparts);
			return 0;
		}
		break;
	}
	*out = MQ_LOAD_RELAXED(&p->sticky);
	*sticky = true;
	return 0;
}

/* ======================================================================== */
/* Record checks                                                            */
/* ======================================================================== */

/*
 * Validate @m before it is partitioned: *raw gets its key, value and header
 * bytes, *near whether it is close enough to max_record_bytes that its exact
 * size must be checked at its place in a batch (its offset and timestamp
 * deltas add bytes further in).  A record too big even at the start of a
 * batch fails here with MQLOG_ETOOBIG; invalid ones with MQLOG_EINVAL.
 */
static int check_record_slow(struct mqlog_producer *p, const mqlog_msg *m,
			     size_t *raw, bool *near)
{
	uint64_t n = (uint64_t)m->key.len + m->value.len;
	size_t size;
	int rc;

	/* record_encoded_size() validates and words any message. */
	rc = record_encoded_size(m, 0, 0, p->max_record, &size);
	if (rc == MQLOG_ETOOBIG)
		return mq_err(MQLOG_ETOOBIG,
			      "produce %s: record of %zu key and %zu value "
			      "bytes with %zu headers is over the topic's "
			      "max_record_bytes (%" PRIu32 ")",
			      pname(p), m->key.len, m->value.len,
			      m->header_count, p->max_record);
	if (rc)
		return mq_err_wrap(rc, "produce %s", pname(p));
	/* Valid and within the limit: every length is below it. */
	for (size_t i = 0; i < m->header_count; i++)
		n += (uint64_t)m->headers[i].key.len + m->headers[i].value.len;
	*raw = (size_t)n;
	*near = RECORD_BOUND(n, (uint64_t)m->header_count) >= p->max_record;
	return 0;
}

static inline int check_record(struct mqlog_producer *p, const mqlog_msg *m,
			       size_t *raw, bool *near)
{
	size_t k = m->key.len, v = m->value.len;

	/* The common record: no headers, well under the limit. */
	if (MQ_LIKELY(m->header_count == 0 && (m->key.data || !k) &&
		      (m->value.data || !v) && k < p->max_record &&
		      v < p->max_record &&
		      RECORD_BOUND((uint64_t)k + v, 0) < p->max_record)) {
		*raw = k + v;
		*near = false;
		return 0;
	}
	return check_record_slow(p, m, raw, near);
}

/* ======================================================================== */
/* Batches                                                                  */
/* ======================================================================== */

static void batch_reset(struct mqlog_producer *p, struct pbatch *b)
{
	b->used = BATCH_HEADER_SIZE;
	b->count = 0;
	b->nopq = 0;
	b->nwaits = 0;
	b->ts_mode = TS_NONE;
	b->nasync = 0;
	b->nsync = 0;
	b->sealed = false;
	b->rc = 0;
	b->split = false;
	b->errmsg[0] = '\0';
	/* A huge record should not pin its memory for the producer's life. */
	if (b->cap > 4 * p->batch_bytes + (64u << 10)) {
		free(b->buf);
		b->buf = NULL;
		b->cap = 0;
	}
}

static void batch_free(struct pbatch *b)
{
	free(b->buf);
	free(b->opq);
	free(b->waits);
}

/* Grow @*arr (of @*cap pointers) to hold more than @n; MQLOG_ENOMEM. */
static int grow_ptrs(void *arr, uint32_t *cap, uint32_t n)
{
	void **a;
	uint32_t ncap = *cap ? *cap : 64;

	if (n < *cap)
		return 0;
	while (ncap <= n)
		ncap *= 2;
	memcpy(&a, arr, sizeof a);
	a = realloc(a, ncap * sizeof *a);
	if (!a)
		return MQLOG_ENOMEM;
	memcpy(arr, &a, sizeof a);
	*cap = ncap;
	return 0;
}

/*
 * Room for one more record of at most @bound encoded bytes, with an opaque
 * (@opq) and a waiter (@wait) entry when asked; on ENOMEM nothing visible
 * changes (capacity only grows).
 */
static int batch_reserve(struct pbatch *b, size_t bound, bool opq, bool wait)
{
	if (MQ_UNLIKELY(b->used + bound > b->cap)) {
		size_t ncap = b->cap ? b->cap : 64u << 10;
		while (ncap < b->used + bound)
			ncap *= 2;
		uint8_t *nb = realloc(b->buf, ncap);
		if (!nb)
			return MQLOG_ENOMEM;
		b->buf = nb;
		b->cap = ncap;
	}
	if (opq && MQ_UNLIKELY(grow_ptrs(&b->opq, &b->opq_cap, b->count)))
		return MQLOG_ENOMEM;
	if (wait && MQ_UNLIKELY(grow_ptrs(&b->waits, &b->waits_cap, b->count)))
		return MQLOG_ENOMEM;
	return 0;
}

/* The timestamp delta @m would have in @b, by @b's mode. */
static int64_t ts_delta(const struct pbatch *b, const mqlog_msg *m)
{
	if (b->ts_mode == TS_EXPLICIT)
		return (int64_t)((uint64_t)m->timestamp -
				 (uint64_t)b->first_ts);
	return 0;
}

/* Encode @m as the next record of @b (room reserved; its opaque kept
 * when @opq). */
static void batch_put(struct pbatch *b, const mqlog_msg *m, bool opq,
		      void *opaque, struct pwait *w)
{
	uint8_t *end;

	if (b->count == 0) {
		b->ts_mode = m->timestamp == MQLOG_TIMESTAMP_NOW ? TS_NOW :
								   TS_EXPLICIT;
		b->first_ts = b->max_ts = m->timestamp;
	}
	end = record_encode(b->buf + b->used, m, b->count, ts_delta(b, m));
	b->used = (size_t)(end - b->buf);
	if (b->ts_mode == TS_EXPLICIT && m->timestamp > b->max_ts)
		b->max_ts = m->timestamp;
	if (opq) {
		while (MQ_UNLIKELY(b->nopq < b->count))
			b->opq[b->nopq++] = NULL;
		b->opq[b->nopq++] = opaque;
	}
	if (w) {
		while (b->nwaits < b->count)
			b->waits[b->nwaits++] = NULL;
		b->waits[b->nwaits++] = w;
	}
	b->count++;
	if (w)
		b->nsync++;
	else
		b->nasync++;
}

/*
 * Whether @m (@bound bytes at most, @near the limit) may join the open
 * batch @b, which is not empty.  A record of the other timestamp mode
 * starts a new batch, as does one whose exact size at this place in the
 * batch would pass max_record_bytes.
 */
static bool batch_room(const struct mqlog_producer *p, const struct pbatch *b,
		       const mqlog_msg *m, size_t bound, bool near)
{
	int mode = m->timestamp == MQLOG_TIMESTAMP_NOW ? TS_NOW : TS_EXPLICIT;
	size_t size;

	if (b->sealed || b->count >= p->batch_records || mode != b->ts_mode ||
	    b->used - BATCH_HEADER_SIZE + bound > p->batch_bytes)
		return false;
	if (MQ_UNLIKELY(near) &&
	    record_encoded_size(m, b->count, ts_delta(b, m), p->max_record,
				&size) != 0)
		return false;
	return true;
}

/* The synchronous caller of record @i of @b, or NULL. */
static struct pwait *wait_of(const struct pbatch *b, uint32_t i)
{
	return i < b->nwaits ? b->waits[i] : NULL;
}

/* The outcome of record @i of @pp's completed batch @b. */
static int slot_outcome(const struct ppart *pp, const struct pbatch *b,
			uint32_t i, uint64_t *offset)
{
	if (MQ_UNLIKELY(b->split)) {
		*offset = pp->outs[i].offset;
		return pp->outs[i].rc;
	}
	*offset = b->rc ? 0 : b->base + i;
	return b->rc;
}

/* ======================================================================== */
/* Partitions of a producer                                                 */
/* ======================================================================== */

static void part_free(struct ppart *pp)
{
	if (!pp)
		return;
	pthread_mutex_destroy(&pp->mu);
	pthread_cond_destroy(&pp->cond);
	batch_free(&pp->bat[0]);
	batch_free(&pp->bat[1]);
	free(pp->msgs);
	free(pp->outs);
	free(pp);
}

static struct ppart *get_part(struct mqlog_producer *p, uint32_t id)
{
	struct ppart *pp = __atomic_load_n(&p->parts[id], __ATOMIC_ACQUIRE);
	struct ppart *expected = NULL;

	if (MQ_LIKELY(pp != NULL))
		return pp;
	pp = calloc(1, sizeof *pp);
	if (!pp) {
		mq_err(MQLOG_ENOMEM, "produce %s/%" PRIu32, pname(p), id);
		return NULL;
	}
	pp->prod = p;
	pp->id = id;
	pthread_mutex_init(&pp->mu, NULL);
	cond_init_mono(&pp->cond);
	pp->open = &pp->bat[0];
	pp->bat[0].seq = 1;
	pp->bat[0].used = pp->bat[1].used = BATCH_HEADER_SIZE;
	if (!__atomic_compare_exchange_n(&p->parts[id], &expected, pp, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		part_free(pp);
		pp = expected;
	}
	return pp;
}

/*
 * Tell the background thread that @pp's open batch holds asynchronous
 * records.  A partition already in its care gets looked at again by its
 * next deadline, which is no later than this batch's: only a partition new
 * to it, or a batch that must go now (@urgent), is worth waking it for.
 * That keeps a steady stream of full batches (appended by the threads that
 * fill them) from costing a wake-up each.  Caller holds pp->mu.
 */
static void notify(struct ppart *pp, bool urgent)
{
	struct mqlog_producer *p = pp->prod;

	pthread_mutex_lock(&p->mu);
	if (!pp->queued) {
		pp->queued = true;
		pp->next_pending = p->pending;
		p->pending = pp;
		urgent = true;
	}
	if (urgent) {
		p->kick = true;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->mu);
}

/*
 * Whether @b (the open batch of @pp, not empty) should be appended now:
 * it is full or flushed, a synchronous caller waits for it (those never
 * linger), there is no linger time, or it has run out.
 */
static bool ready(const struct mqlog_producer *p, const struct ppart *pp,
		  const struct pbatch *b)
{
	return b->sealed || b->nsync || p->linger_ns == 0 ||
	       pp->flush_seq >= b->seq || mq_mono_ns() >= b->deadline_ns;
}

/* Seal @pp's open batch: it takes no more records.  pp->mu held. */
static void seal(struct ppart *pp)
{
	struct pbatch *b = pp->open;

	if (b->sealed)
		return;
	b->sealed = true;
	sticky_next(pp->prod, pp->id);
}

/* ======================================================================== */
/* Appending a batch (the leader)                                           */
/* ======================================================================== */

/*
 * The slow path of a refused batch under the REJECT policy: decode the
 * batch's records back into pp->msgs, append the longest prefix that fits
 * (halving), so that as many records as the limit allows get in, in order.
 * Once a record fails, every record after it fails too.  Per-record
 * outcomes go to the slots.  Returns 0 or the first failure.
 */
static int append_range(struct mqlog_producer *p, struct ppart *pp,
			struct pbatch *b, uint32_t lo, uint32_t hi)
{
	uint64_t base = 0;
	int rc;

	rc = mqlog_append(p->t, pp->id, pp->msgs + lo, hi - lo, p->o.sync,
			  &base);
	if (rc == 0) {
		for (uint32_t i = lo; i < hi; i++) {
			pp->outs[i].rc = 0;
			pp->outs[i].offset = base + (i - lo);
		}
		return 0;
	}
	if (rc == MQLOG_EFULL && hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		int r = append_range(p, pp, b, lo, mid);
		if (r == 0)
			return append_range(p, pp, b, mid, hi);
		rc = r;
		lo = mid;
	} else {
		if (!b->errmsg[0])
			copy_msg(b->errmsg, mqlog_errmsg(NULL));
		if (fatal_code(rc))
			set_fatal(p, rc, b->errmsg);
	}
	for (uint32_t i = lo; i < hi; i++) {
		pp->outs[i].rc = rc;
		pp->outs[i].offset = 0;
	}
	return rc;
}

/* Decode @b (finished, first timestamp @first_ts) into pp->msgs and
 * append it by ranges; false when it cannot be decoded (out of memory). */
static bool append_split(struct mqlog_producer *p, struct ppart *pp,
			 struct pbatch *b, int64_t first_ts)
{
	struct batch_hdr h;
	struct batch_iter it;
	mqlog_record rec;
	mqlog_header *hs;
	size_t nh = 0, k = 0;
	const char *why;

	memset(&h, 0, sizeof h);
	h.length = (uint32_t)b->used;
	h.record_count = b->count;
	h.first_timestamp = first_ts;
	if (pp->msgs_cap < b->count) {
		mqlog_msg *nm = realloc(pp->msgs, b->count * sizeof *nm);
		if (!nm)
			return false;
		pp->msgs = nm;
		struct pout *no = realloc(pp->outs, b->count * sizeof *no);
		if (!no)
			return false;
		pp->outs = no;
		pp->msgs_cap = b->count;
	}
	/* Headers: count them, then decode into one array. */
	batch_iter_init(&it, b->buf, &h);
	while (batch_iter_next(&it, &rec, &why) == 1)
		nh += rec.header_count;
	hs = nh ? malloc(nh * sizeof *hs) : NULL;
	if (nh && !hs)
		return false;
	batch_iter_init(&it, b->buf, &h);
	for (uint32_t i = 0; i < b->count; i++) {
		mqlog_msg *m = &pp->msgs[i];
		if (batch_iter_next(&it, &rec, &why) != 1) {
			free(hs);
			return false;
		}
		m->key = rec.key;
		m->value = rec.value;
		m->timestamp = rec.timestamp;
		m->header_count = rec.header_count;
		m->headers = rec.header_count ? hs + k : NULL;
		if (rec.header_count &&
		    headers_decode(rec.headers_raw, rec.headers_raw_len,
				   rec.header_count, hs + k,
				   rec.header_count) < 0) {
			free(hs);
			return false;
		}
		k += rec.header_count;
	}
	b->split = true;
	b->errmsg[0] = '\0';
	(void)append_range(p, pp, b, 0, b->count);
	free(hs);
	return true;
}

/* Append @b, the in-flight batch of @pp: no lock held. */
static void append_batch(struct mqlog_producer *p, struct ppart *pp,
			 struct pbatch *b)
{
	struct partition *part;
	int64_t first = b->first_ts, max = b->max_ts;
	int rc, f;

	f = MQ_LOAD(&p->fatal_rc);
	if (MQ_UNLIKELY(f)) {
		pthread_mutex_lock(&p->mu);
		copy_msg(b->errmsg, p->fatal_msg);
		pthread_mutex_unlock(&p->mu);
		b->rc = f;
		return;
	}
	if (b->ts_mode == TS_NOW)
		first = max = mq_now_ms();
	batch_finish(b->buf, b->used, b->count, first, max);
	rc = topic_partition(p->t, pp->id, &part);
	if (rc == 0)
		rc = partition_append_encoded(part, b->buf, b->used, b->count,
					      p->o.sync, &b->base);
	if (MQ_LIKELY(rc == 0)) {
		b->rc = 0;
		return;
	}
	copy_msg(b->errmsg, mqlog_errmsg(NULL));
	if (rc == MQLOG_EFULL && p->split_full && b->count > 1 &&
	    append_split(p, pp, b, first))
		return;
	b->rc = rc;
	if (fatal_code(rc))
		set_fatal(p, rc, b->errmsg);
}

/* Deliver the queued reports; prod->mu held, released meanwhile.  Only
 * the background thread calls it. */
static void deliver_locked(struct mqlog_producer *p)
{
	struct dhalf q = p->dq;

	p->dq = p->dq_spare;
	memset(&p->dq_spare, 0, sizeof p->dq_spare);
	pthread_mutex_unlock(&p->mu);
	for (size_t r = 0; r < q.nruns; r++) {
		const struct dlv *run = &q.runs[r];
		mqlog_delivery d;
		d.rc = run->rc;
		d.partition = run->partition;
		d.errmsg = NULL;
		if (d.rc) {
			d.errmsg = run->msg ? run->msg : mqlog_strerror(d.rc);
			/* mqlog_errmsg() in the callback says it too. */
			err_copy(d.rc, d.errmsg);
		}
		for (uint32_t k = 0; k < run->count; k++) {
			d.offset = d.rc ? 0 : run->base + k;
			d.opaque = q.opq[run->opq + k];
			p->o.on_delivery(p->o.delivery_arg, &d);
		}
		free(run->msg);
	}
	pthread_mutex_lock(&p->mu);
	p->dq_done += q.nopq;
	q.nruns = 0;
	q.nopq = 0;
	p->dq_spare = q;
	pthread_cond_broadcast(&p->dcond);
}

/* Room in the queue for one run of at least one record: returns how many
 * records fit.  prod->mu held (released while waiting for memory). */
static size_t dq_room(struct mqlog_producer *p)
{
	for (;;) {
		struct dhalf *q = &p->dq;
		if (q->nruns == q->runs_cap) {
			size_t ncap = q->runs_cap ? q->runs_cap * 2 : 64;
			struct dlv *nr = realloc(q->runs, ncap * sizeof *nr);
			if (nr) {
				q->runs = nr;
				q->runs_cap = ncap;
			}
		}
		if (q->nopq == q->opq_cap) {
			size_t ncap = q->opq_cap ? q->opq_cap * 2 : PROD_DQ_MIN;
			void **no = realloc(q->opq, ncap * sizeof *no);
			if (no) {
				q->opq = no;
				q->opq_cap = ncap;
			}
		}
		if (q->nruns < q->runs_cap && q->nopq < q->opq_cap)
			return q->opq_cap - q->nopq;
		/* Out of memory: wait for the queue to drain (or drain it, in
		 * the thread that delivers) and use the other half. */
		if (tl_sender == p) {
			deliver_locked(p);
		} else {
			pthread_cond_signal(&p->cond);
			pthread_cond_wait(&p->dcond, &p->mu);
		}
	}
}

/* Queue the reports of @n records of partition @part from offset @base
 * (rc 0) or all failed with @rc and @msg; @opq their opaques.  prod->mu
 * held. */
static void dq_push(struct mqlog_producer *p, uint32_t part, uint64_t base,
		    int rc, const char *msg, void *const *opq, uint32_t n)
{
	while (n) {
		size_t room = dq_room(p);
		uint32_t k = n < room ? n : (uint32_t)room;
		struct dhalf *q = &p->dq;
		struct dlv *d = &q->runs[q->nruns++];

		d->partition = part;
		d->count = k;
		d->base = base;
		d->rc = rc;
		d->msg = rc ? strdup(msg) : NULL;
		d->opq = q->nopq;
		memcpy(q->opq + q->nopq, opq, k * sizeof *opq);
		q->nopq += k;
		p->dq_pushed += k;
		opq += k;
		base += k;
		n -= k;
	}
}

/*
 * Hand the outcomes of @b's asynchronous records to the delivery queue and
 * remember the first failure for flush.  No partition lock held.
 */
static void queue_outcomes(struct mqlog_producer *p, struct ppart *pp,
			   struct pbatch *b)
{
	bool failed = b->rc || b->split;
	void *no_opq = NULL;

	if (!p->o.on_delivery && !failed)
		return;
	pthread_mutex_lock(&p->mu);
	if (MQ_LIKELY(!b->split && b->nwaits == 0)) {
		/* The common case: one run, every record asynchronous. */
		if (b->rc && !p->async_rc) {
			p->async_rc = b->rc;
			copy_msg(p->async_msg, b->errmsg);
		}
		if (p->o.on_delivery)
			dq_push(p, pp->id, b->base, b->rc, b->errmsg, b->opq,
				b->count);
	} else {
		/* Synchronous records among them, or per-record outcomes:
		 * one report at a time. */
		for (uint32_t i = 0; i < b->count; i++) {
			uint64_t off;
			int rc;
			if (wait_of(b, i))
				continue;
			rc = slot_outcome(pp, b, i, &off);
			if (rc && !p->async_rc) {
				p->async_rc = rc;
				copy_msg(p->async_msg, b->errmsg);
			}
			if (p->o.on_delivery)
				dq_push(p, pp->id, off, rc, b->errmsg,
					i < b->nopq ? &b->opq[i] : &no_opq, 1);
		}
	}
	/* A ticking background thread comes by soon anyway. */
	if (p->dq.nopq && (!p->sender_ticking || p->dq.nopq >= PROD_DQ_WAKE))
		pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

/*
 * Append @pp's open batch as its leader.  Called with pp->mu held, nothing
 * in flight and a non-empty open batch; returns with pp->mu held, the batch
 * done and its waiters woken.
 */
static void lead(struct ppart *pp)
{
	struct mqlog_producer *p = pp->prod;
	struct pbatch *b = pp->open;
	struct pbatch *next = b == &pp->bat[0] ? &pp->bat[1] : &pp->bat[0];

	pp->inflight = b;
	pp->open = next;
	next->seq = b->seq + 1;
	sticky_next(p, pp->id);
	pthread_mutex_unlock(&pp->mu);

	append_batch(p, pp, b);
	if (b->nsync) {
		for (uint32_t i = 0; i < b->count; i++) {
			struct pwait *w = wait_of(b, i);
			if (!w)
				continue;
			w->rc = slot_outcome(pp, b, i, &w->offset);
			if (w->rc)
				copy_msg(w->msg, b->errmsg);
		}
	}
	if (b->nasync)
		queue_outcomes(p, pp, b);

	pthread_mutex_lock(&pp->mu);
	if (b->nsync)
		for (uint32_t i = 0; i < b->nwaits; i++)
			if (b->waits[i])
				b->waits[i]->done = true;
	pp->done_seq = b->seq;
	pp->inflight = NULL;
	batch_reset(p, b);
	/* Nobody filled the other batch meanwhile: keep using this one, whose
	 * bytes are warm in this CPU's cache. */
	if (pp->open->count == 0) {
		b->seq = pp->open->seq;
		pp->open = b;
	}
	pthread_cond_broadcast(&pp->cond);
	/* A full batch waiting behind this one goes with whoever is blocked
	 * on it (woken above); asynchronous records with nobody there need
	 * the background thread, which loops over its partitions itself. */
	if (pp->open->nasync && tl_sender != p)
		notify(pp, ready(p, pp, pp->open));
}

/* ======================================================================== */
/* The background thread                                                    */
/* ======================================================================== */

/*
 * Append what is ready of @pp's asynchronous records.  Returns true when
 * the partition stays in the thread's care (a batch lingering), with its
 * deadline in *deadline.
 */
static bool process(struct mqlog_producer *p, struct ppart *pp,
		    uint64_t *deadline)
{
	bool keep = false;

	pthread_mutex_lock(&pp->mu);
	for (;;) {
		struct pbatch *b = pp->open;
		/* Synchronous records lead themselves; a batch in flight is
		 * followed by a notify from its leader. */
		if (b->nasync == 0 || pp->inflight)
			break;
		if (ready(p, pp, b)) {
			lead(pp);
			continue;
		}
		keep = true;
		*deadline = b->deadline_ns;
		break;
	}
	if (!keep) {
		pthread_mutex_lock(&p->mu);
		pp->queued = false;
		pthread_mutex_unlock(&p->mu);
	}
	pthread_mutex_unlock(&pp->mu);
	return keep;
}

/*
 * The background thread: appends lingering batches at their deadlines and
 * delivers the reports.  While reports keep coming it wakes every
 * PROD_TICK_NS to deliver them (ticking), so that the threads queueing them
 * need not wake it for every batch: a wake-up costs several microseconds
 * (more in a virtual machine), a tick costs one timer interrupt.
 */
static void *sender_main(void *arg)
{
	struct mqlog_producer *p = arg;
	bool ticking = false;

	tl_sender = p;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		if (p->dq.nopq) {
			deliver_locked(p);
			ticking = true;
			continue;
		}
		if (p->kick ||
		    (p->pending && mq_mono_ns() >= p->next_deadline)) {
			struct ppart *list = p->pending, *kept = NULL;
			uint64_t next = UINT64_MAX;

			p->kick = false;
			p->pending = NULL;
			pthread_mutex_unlock(&p->mu);
			while (list) {
				struct ppart *pp = list;
				uint64_t d = UINT64_MAX;
				/* Ours until process() drops it. */
				list = pp->next_pending;
				if (process(p, pp, &d)) {
					pp->next_pending = kept;
					kept = pp;
					if (d < next)
						next = d;
				}
			}
			pthread_mutex_lock(&p->mu);
			while (kept) {
				struct ppart *pp = kept;
				kept = pp->next_pending;
				pp->next_pending = p->pending;
				p->pending = pp;
			}
			p->next_deadline = next;
			continue;
		}
		if (p->stop)
			break;
		uint64_t until = p->pending ? p->next_deadline : UINT64_MAX;
		if (ticking && mq_mono_ns() + PROD_TICK_NS < until)
			until = mq_mono_ns() + PROD_TICK_NS;
		p->sender_ticking = ticking;
		if (until != UINT64_MAX)
			cond_wait_until(&p->cond, &p->mu, until);
		else
			pthread_cond_wait(&p->cond, &p->mu);
		p->sender_ticking = false;
		/* A quiet tick ends ticking: queuers wake it again. */
		if (!p->dq.nopq)
			ticking = false;
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static int start_sender(struct mqlog_producer *p)
{
	sigset_t all, old;
	int rc = 0, e;

	pthread_mutex_lock(&p->mu);
	if (!MQ_LOAD_RELAXED(&p->sender_started) &&
	    MQ_LOAD(&p->state) == PROD_OPEN) {
		/* The application's signals go to its own threads. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		e = pthread_create(&p->sender, NULL, sender_main, p);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (e)
			rc = mq_err(-e, "produce %s: start the producer thread",
				    pname(p));
		else
			MQ_STORE(&p->sender_started, 1u);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* ======================================================================== */
/* Producing                                                                */
/* ======================================================================== */

/*
 * Produce @m: to the open batch of its partition, then (synchronous, @w
 * set) wait for its outcome, or (asynchronous) return.  *part_out gets the
 * partition.
 */
static int produce(struct mqlog_producer *p, const mqlog_msg *m, uint32_t want,
		   struct pwait *w, void *opaque, uint32_t *part_out)
{
	const char *what = w ? "produce" : "produce async";
	struct ppart *pp;
	struct pbatch *b;
	uint32_t part = 0;
	size_t raw = 0, bound;
	uint64_t seq;
	bool near = false, sticky, opq;
	int rc, f;

	if (!w && MQ_UNLIKELY(!MQ_LOAD(&p->sender_started))) {
		rc = start_sender(p);
		if (rc)
			return rc;
	}
	rc = check_record(p, m, &raw, &near);
	if (rc)
		return rc;
	bound = RECORD_BOUND(raw, m->header_count);
retry:
	rc = choose(p, m, want, &part, &sticky);
	if (rc)
		return rc;
	pp = get_part(p, part);
	if (!pp)
		return MQLOG_ENOMEM;

	pthread_mutex_lock(&pp->mu);
	for (;;) {
		/* Under the partition lock, so that close's flush, which
		 * takes it after setting the state, sees every record that
		 * got in. */
		if (MQ_UNLIKELY(MQ_LOAD(&p->state) != PROD_OPEN)) {
			pthread_mutex_unlock(&pp->mu);
			return closed_err(p, what);
		}
		f = MQ_LOAD(&p->fatal_rc);
		if (MQ_UNLIKELY(f)) {
			pthread_mutex_unlock(&pp->mu);
			return fatal_err(p, f, what);
		}
		b = pp->open;
		if (b->count == 0 || batch_room(p, b, m, bound, near))
			break;
		/* No room: the batch is full. */
		seal(pp);
		if (sticky && MQ_LOAD(&p->sticky) != part) {
			/* A null key follows the sticky partition. */
			pthread_mutex_unlock(&pp->mu);
			goto retry;
		}
		if (!pp->inflight)
			lead(pp);
		else
			pthread_cond_wait(&pp->cond, &pp->mu);
	}
	opq = p->o.on_delivery != NULL;
	rc = batch_reserve(b, bound, opq, w != NULL);
	if (rc) {
		pthread_mutex_unlock(&pp->mu);
		return mq_err(rc, "produce %s/%" PRIu32 ": %zu bytes", pname(p),
			      part, bound);
	}
	if (b->count == 0 && p->linger_ns)
		b->deadline_ns = mq_mono_ns() + p->linger_ns;
	batch_put(b, m, opq, opaque, w);
	if (b->count >= p->batch_records ||
	    b->used - BATCH_HEADER_SIZE >= p->batch_bytes)
		seal(pp);
	*part_out = part;
	if (!w) {
		/* The first asynchronous record starts the linger clock. */
		if (b->nasync == 1)
			notify(pp, p->linger_ns == 0);
		/* A full batch goes at once, from the thread that filled it:
		 * its bytes are still in this CPU's cache. */
		if (b->sealed && !pp->inflight)
			lead(pp);
		pthread_mutex_unlock(&pp->mu);
		return 0;
	}

	/* Synchronous: lead the batch as soon as nothing is in flight (a
	 * synchronous record never lingers), else follow. */
	seq = b->seq;
	while (!w->done) {
		if (!pp->inflight && pp->open->seq == seq)
			lead(pp);
		else
			pthread_cond_wait(&pp->cond, &pp->mu);
	}
	pthread_mutex_unlock(&pp->mu);
	if (w->rc)
		return err_copy(w->rc, w->msg);
	return 0;
}

int mqlog_produce(mqlog_producer *p, const mqlog_msg *msg, uint32_t partition,
		  uint32_t *partition_out, uint64_t *offset_out)
{
	struct pwait w;
	uint32_t part;
	int rc;

	if (!p || !msg)
		return mq_err(MQLOG_EINVAL, "produce: %s is NULL",
			      p ? "record" : "producer");
	w.rc = 0;
	w.done = false;
	w.offset = 0;
	w.msg[0] = '\0';
	rc = produce(p, msg, partition, &w, NULL, &part);
	if (rc)
		return rc;
	if (partition_out)
		*partition_out = part;
	if (offset_out)
		*offset_out = w.offset;
	return 0;
}

int mqlog_produce_async(mqlog_producer *p, const mqlog_msg *msg,
			uint32_t partition, void *opaque)
{
	uint32_t part;

	if (!p || !msg)
		return mq_err(MQLOG_EINVAL, "produce async: %s is NULL",
			      p ? "record" : "producer");
	return produce(p, msg, partition, NULL, opaque, &part);
}

/* ======================================================================== */
/* Flush and close                                                          */
/* ======================================================================== */

static int flush_all(struct mqlog_producer *p)
{
	char msg[PROD_ERRMSG];
	uint64_t snap;
	int rc;

	for (uint32_t i = 0; i < p->nparts; i++) {
		struct ppart *pp =
			__atomic_load_n(&p->parts[i], __ATOMIC_ACQUIRE);
		uint64_t target;

		if (!pp)
			continue;
		pthread_mutex_lock(&pp->mu);
		/* The last batch holding a record produced before now. */
		target = pp->open->count ? pp->open->seq : pp->open->seq - 1;
		if (pp->flush_seq < target)
			pp->flush_seq = target;
		while (pp->done_seq < target) {
			if (!pp->inflight && pp->open->count &&
			    pp->open->seq <= target)
				lead(pp);
			else
				pthread_cond_wait(&pp->cond, &pp->mu);
		}
		pthread_mutex_unlock(&pp->mu);
	}
	pthread_mutex_lock(&p->mu);
	/* Every report of those batches was queued before they were done. */
	snap = p->dq_pushed;
	if (p->dq_done < snap)
		pthread_cond_signal(&p->cond);
	while (p->dq_done < snap)
		pthread_cond_wait(&p->dcond, &p->mu);
	rc = p->async_rc;
	copy_msg(msg, p->async_msg);
	p->async_rc = 0;
	p->async_msg[0] = '\0';
	pthread_mutex_unlock(&p->mu);
	if (rc)
		return err_copy(rc, msg);
	return 0;
}

int mqlog_producer_flush(mqlog_producer *p)
{
	if (!p)
		return mq_err(MQLOG_EINVAL, "producer flush: producer is NULL");
	if (tl_sender == p)
		return mq_err(MQLOG_EBUSY,
			      "producer flush %s: called from a "
			      "delivery callback",
			      pname(p));
	if (MQ_LOAD(&p->state) == PROD_CLOSED)
		return closed_err(p, "producer flush");
	return flush_all(p);
}

int mqlog_producer_close(mqlog_producer *p)
{
	bool started;
	int rc;

	if (!p)
		return mq_err(MQLOG_EINVAL, "producer close: producer is NULL");
	if (tl_sender == p)
		return mq_err(MQLOG_EBUSY,
			      "producer close %s: called from a "
			      "delivery callback",
			      pname(p));
	pthread_mutex_lock(&p->mu);
	if (MQ_LOAD(&p->state) != PROD_OPEN) {
		pthread_mutex_unlock(&p->mu);
		return closed_err(p, "producer close");
	}
	MQ_STORE(&p->state, PROD_CLOSING);
	pthread_mutex_unlock(&p->mu);

	rc = flush_all(p);

	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	started = MQ_LOAD(&p->sender_started) != 0;
	pthread_mutex_unlock(&p->mu);
	if (started)
		pthread_join(p->sender, NULL);
	MQ_STORE(&p->state, PROD_CLOSED);
	return rc;
}

void mqlog_producer_free(mqlog_producer *p)
{
	if (!p)
		return;
	if (MQ_LOAD(&p->state) == PROD_OPEN)
		(void)mqlog_producer_close(p);
	for (uint32_t i = 0; i < p->nparts; i++)
		part_free(p->parts[i]);
	/* Close delivered every report; nothing is left to free in them. */
	free(p->dq.runs);
	free(p->dq.opq);
	free(p->dq_spare.runs);
	free(p->dq_spare.opq);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
	pthread_cond_destroy(&p->dcond);
	free(p->parts);
	free(p);
}

/* ======================================================================== */
/* Opening                                                                  */
/* ======================================================================== */

void mqlog_producer_options_init(mqlog_producer_options *opts)
{
	memset(opts, 0, sizeof *opts);
	opts->batch_records = PROD_DEFAULT_BATCH_RECORDS;
	opts->batch_bytes = PROD_DEFAULT_BATCH_BYTES;
	opts->linger_ms = 5;
	opts->sync = MQLOG_SYNC_DEFAULT;
	opts->partitioner = MQLOG_PARTITIONER_XXH3;
}

static int check_options(const mqlog_topic *t, const mqlog_producer_options *o)
{
	const char *n = t->name;

	if (o->batch_records < 1 || o->batch_records > PROD_MAX_BATCH_RECORDS)
		return mq_err(MQLOG_EINVAL,
			      "producer %s: batch_records %" PRIu32
			      " out of range (1..%u)",
			      n, o->batch_records, PROD_MAX_BATCH_RECORDS);
	if (o->batch_bytes < 1)
		return mq_err(MQLOG_EINVAL, "producer %s: batch_bytes is 0", n);
	if (o->linger_ms > PROD_MAX_LINGER_MS)
		return mq_err(MQLOG_EINVAL,
			      "producer %s: linger_ms %" PRIu32
			      " out of range (0..%u)",
			      n, o->linger_ms, PROD_MAX_LINGER_MS);
	if (o->sync != MQLOG_SYNC_DEFAULT && o->sync != MQLOG_SYNC_NONE &&
	    o->sync != MQLOG_SYNC_INTERVAL && o->sync != MQLOG_SYNC_ALWAYS)
		return mq_err(MQLOG_EINVAL, "producer %s: sync policy %d", n,
			      o->sync);
	if (o->partitioner != MQLOG_PARTITIONER_XXH3 &&
	    o->partitioner != MQLOG_PARTITIONER_MURMUR2 &&
	    o->partitioner != MQLOG_PARTITIONER_CUSTOM)
		return mq_err(MQLOG_EINVAL, "producer %s: partitioner %d", n,
			      o->partitioner);
	if (o->partitioner == MQLOG_PARTITIONER_CUSTOM && !o->partition_fn)
		return mq_err(MQLOG_EINVAL,
			      "producer %s: CUSTOM partitioner without "
			      "partition_fn",
			      n);
	return 0;
}

int mqlog_producer_open(mqlog_topic *t, const mqlog_producer_options *opts,
			mqlog_producer **out)
{
	const mqlog_topic_config *cfg;
	struct mqlog_producer *p;
	uint64_t bb;
	int rc;

	if (!t || !out)
		return mq_err(MQLOG_EINVAL, "producer open: %s is NULL",
			      t ? "output" : "topic");
	if (t->db->rdonly)
		return mq_err(MQLOG_ERDONLY,
			      "producer open %s: directory %s opened read-only",
			      t->name, t->db->path);
	p = calloc(1, sizeof *p);
	if (!p)
		return mq_err(MQLOG_ENOMEM, "producer open %s", t->name);
	if (opts)
		p->o = *opts;
	else
		mqlog_producer_options_init(&p->o);
	p->t = t;
	rc = check_options(t, &p->o);
	if (rc) {
		free(p);
		return rc;
	}
	cfg = &t->meta.cfg;
	p->nparts = cfg->partitions;
	p->max_record = cfg->max_record_bytes;
	p->split_full = cfg->full_policy == MQLOG_FULL_REJECT;
	p->linger_ns = (uint64_t)p->o.linger_ms * 1000000u;
	/*
	 * A batch well inside one segment, so that small segments roll
	 * between batches; and one that can fit under the topic's limits,
	 * so that BLOCK can ever admit it.
	 */
	bb = p->o.batch_bytes;
	if (bb > cfg->segment_bytes / 4)
		bb = cfg->segment_bytes / 4;
	if (cfg->retention_bytes > 0 && bb > (uint64_t)cfg->retention_bytes / 2)
		bb = (uint64_t)cfg->retention_bytes / 2;
	if (bb > BATCH_MAX_LENGTH / 2)
		bb = BATCH_MAX_LENGTH / 2;
	p->batch_bytes = bb ? bb : 1;
	p->batch_records = p->o.batch_records;
	if (cfg->max_messages > 0 &&
	    (uint64_t)p->batch_records > (uint64_t)cfg->max_messages)
		p->batch_records = (uint32_t)cfg->max_messages;
	p->rng = splitmix64(mq_mono_ns() ^ (uint64_t)(uintptr_t)p);
	p->sticky = (uint32_t)(splitmix64(p->rng) % p->nparts);
	p->next_deadline = UINT64_MAX;
	p->parts = calloc(p->nparts, sizeof *p->parts);
	if (p->o.on_delivery) {
		/* Enough that running out of memory later only slows the
		 * queue down (see dq_room). */
		p->dq.runs = malloc(64 * sizeof *p->dq.runs);
		p->dq.opq = malloc(PROD_DQ_MIN * sizeof *p->dq.opq);
		p->dq_spare.runs = malloc(64 * sizeof *p->dq_spare.runs);
		p->dq_spare.opq = malloc(PROD_DQ_MIN * sizeof *p->dq_spare.opq);
		p->dq.runs_cap = p->dq_spare.runs_cap = 64;
		p->dq.opq_cap = p->dq_spare.opq_cap = PROD_DQ_MIN;
	}
	if (!p->parts ||
	    (p->o.on_delivery && (!p->dq.runs || !p->dq.opq ||
				  !p->dq_spare.runs || !p->dq_spare.opq))) {
		free(p->parts);
		free(p->dq.runs);
		free(p->dq.opq);
		free(p->dq_spare.runs);
		free(p->dq_spare.opq);
		free(p);
		return mq_err(MQLOG_ENOMEM, "producer open %s", t->name);
	}
	pthread_mutex_init(&p->mu, NULL);
	cond_init_mono(&p->cond);
	pthread_cond_init(&p->dcond, NULL);
	*out = p;
	return 0;
}
