/*
 * test_chaos.c - producers, a 3-member consumer group and a standalone
 * reader in separate processes, while a nemesis sends SIGKILL, SIGSTOP and
 * SIGCONT to them at random; a checker over everything they reported.
 *
 * Processes (each re-spawned after a kill):
 *   - 2 producers: keyed records (4 keys each) with sync ALWAYS; after
 *     each append returns they report (partition, offset, key, incarnation,
 *     sequence number);
 *   - 3 members of group "g" (commit after processing, committing at every
 *     poll; heartbeat 50 ms, lease 300 ms): they report every record they
 *     are handed, with their member id and generation, and the committed
 *     offsets they see;
 *   - 1 standalone consumer on every partition, tailing the log, checking
 *     density and record format itself and reporting how far it read.
 *
 * The checker (the parent) asserts:
 *   - no acknowledged record is lost: each is in the final log, exactly;
 *   - per-key order per producer: along each partition, a key's
 *     (incarnation, sequence) only grows;
 *   - no partition is handed out by two members within one generation;
 *   - a record is handed out twice only when its first member was killed
 *     or stalled past its lease, and only at or after that member's last
 *     commit of the partition;
 *   - at the end (nemesis stopped, producers stopped) the group's lag
 *     reaches zero, every record was handed out at least once, the
 *     standalone reader never read past what the final log holds, and
 *     mqlog_verify is clean.
 *
 * Default run: 12 seconds of chaos (6 under sanitizers); "--soak":
 * MQLOG_SOAK_SECONDS (default 600).
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "battery.h"

#define NPART 6
#define NPROD 2
#define NCONS 3
#define NKEYS 4 /* per producer */
#define NPROC (NPROD + NCONS + 1)

enum {
	M_HELLO = 1,
	M_ACK,
	M_DELIVER,
	M_COMMITTED,
	M_READ,
	M_ERROR,
	M_LOST
};

/* One report.  Under PIPE_BUF, so written whole. */
struct cmsg {
	uint32_t kind; /* M_* */
	uint32_t who;  /* process slot */
	uint32_t part; /* partition */
	uint32_t key;  /* ACK: producer * NKEYS + key */
	uint64_t off;  /* offset (COMMITTED: committed offset) */
	uint64_t a;    /* ACK: incarnation << 32 | seq; DELIVER: member */
	uint64_t b;    /* DELIVER: generation; HELLO: member id */
};

static int report_fd = -1;
static volatile sig_atomic_t stopping;

static void say(const struct cmsg *m)
{
	if (write(report_fd, m, sizeof *m) != (ssize_t)sizeof *m)
		_exit(9);
}

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* ------------------------------------------------------------------------ */
/* Children                                                                 */
/* ------------------------------------------------------------------------ */

static void child_open(const char *dir, mqlog **db, mqlog_topic **t)
{
	if (mqlog_open(dir, NULL, db) != 0 ||
	    mqlog_topic_open(*db, "c", t) != 0) {
		fprintf(stderr, "chaos child: open: %s\n", mqlog_errmsg(NULL));
		_exit(3);
	}
}

static void producer(const char *dir, unsigned who, unsigned inc)
{
	mqlog *db;
	mqlog_topic *t;
	char key[16], val[64];
	uint64_t rng = bt_mix(who * 1000003u + inc);

	child_open(dir, &db, &t);
	for (uint32_t seq = 0; !stopping; seq++) {
		unsigned k = (unsigned)(h_rand(&rng) % NKEYS);
		unsigned kid = who * NKEYS + k;
		uint64_t off;
		mqlog_msg m;
		snprintf(key, sizeof key, "key-%u", kid);
		snprintf(val, sizeof val, "%u:%u:%u", kid, inc, seq);
		memset(&m, 0, sizeof m);
		m.key = (mqlog_bytes){ key, strlen(key) };
		m.value = (mqlog_bytes){ val, strlen(val) };
		m.timestamp = MQLOG_TIMESTAMP_NOW;
		uint32_t part =
			mqlog_partition_for_key(key, strlen(key), NPART);
		int rc = mqlog_append(t, part, &m, 1, MQLOG_SYNC_ALWAYS, &off);
		if (rc) {
			fprintf(stderr, "chaos producer: %s\n",
				mqlog_errmsg(NULL));
			say(&(struct cmsg){ M_ERROR, who, part, 0, 0, 0, 0 });
			_exit(4);
		}
		say(&(struct cmsg){ M_ACK, who, part, kid, off,
				    (uint64_t)inc << 32 | seq, 0 });
		h_sleep_ms(1);
	}
	mqlog_topic_close(t);
	mqlog_close(db);
	_exit(0);
}

/* The member id the child last handed records out under. */
static uint64_t member_id_now;
static unsigned member_who;

/* LOST: the group removed us (our lease ran out while we, or a process
 * holding LMDB's writer lock, were stopped). */
static void on_rebalance(void *arg, mqlog_consumer *c, int event,
			 const uint32_t *partitions, size_t count)
{
	(void)arg;
	(void)c;
	(void)partitions;
	(void)count;
	if (event == MQLOG_REBALANCE_LOST)
		say(&(struct cmsg){ M_LOST, member_who, 0, 0, 0, 0,
				    member_id_now });
}

static void member(const char *dir, unsigned who)
{
	mqlog *db;
	mqlog_topic *t;
	mqlog_consumer *c = NULL;
	mqlog_consumer_options o;
	mqlog_record recs[64];

	child_open(dir, &db, &t);
	mqlog_consumer_options_init(&o);
	o.group = "g";
	o.commit_mode = MQLOG_COMMIT_AFTER;
	o.auto_commit_interval_ms = 0;
	o.heartbeat_ms = 50;
	o.lease_ms = 300;
	o.on_rebalance = on_rebalance;
	member_who = who;
	if (mqlog_consumer_open(t, &o, &c) != 0) {
		fprintf(stderr, "chaos member: open: %s\n", mqlog_errmsg(NULL));
		_exit(3);
	}
	member_id_now = mqlog_consumer_member_id(c);
	say(&(struct cmsg){ M_HELLO, who, 0, 0, 0, 0, member_id_now });
	while (!stopping) {
		size_t n = 0;
		int rc = mqlog_consumer_poll(c, recs, 64, 50, &n);
		if (rc) {
			fprintf(stderr, "chaos member: poll: %s\n",
				mqlog_errmsg(NULL));
			say(&(struct cmsg){ M_ERROR, who, 0, 0, 0, 0, 0 });
			_exit(4);
		}
		uint64_t gen = mqlog_consumer_generation(c);
		uint64_t id = mqlog_consumer_member_id(c);
		if (id != member_id_now) {
			member_id_now = id; /* rejoined after LOST */
			say(&(struct cmsg){ M_HELLO, who, 0, 0, 0, 0, id });
		}
		for (size_t i = 0; i < n; i++)
			say(&(struct cmsg){ M_DELIVER, who, recs[i].partition,
					    0, recs[i].offset, id, gen });
		/* What the group has committed for our partitions (the
		 * previous poll's records were committed by this one). */
		uint32_t parts[NPART];
		size_t np = 0;
		if (n && mqlog_consumer_assignment(c, parts, NPART, &np) == 0)
			for (size_t i = 0; i < np; i++) {
				uint64_t co;
				if (mqlog_consumer_committed(c, parts[i],
							     &co) == 0)
					say(&(struct cmsg){ M_COMMITTED, who,
							    parts[i], 0, co, id,
							    gen });
			}
	}
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
	_exit(0);
}

/* A standalone consumer over every partition: checks density and the
 * record format itself, reports how far it got. */
static void tail_reader(const char *dir, unsigned who)
{
	mqlog *db;
	mqlog_topic *t;
	mqlog_consumer *c = NULL;
	mqlog_record recs[64];
	uint32_t parts[NPART];
	uint64_t next[NPART];

	child_open(dir, &db, &t);
	for (uint32_t p = 0; p < NPART; p++) {
		parts[p] = p;
		next[p] = UINT64_MAX;
	}
	if (mqlog_consumer_open(t, NULL, &c) != 0 ||
	    mqlog_consumer_assign(c, parts, NPART) != 0)
		_exit(3);
	while (!stopping) {
		size_t n = 0;
		if (mqlog_consumer_poll(c, recs, 64, 50, &n) != 0) {
			fprintf(stderr, "chaos reader: %s\n",
				mqlog_errmsg(NULL));
			say(&(struct cmsg){ M_ERROR, who, 0, 0, 0, 0, 0 });
			_exit(4);
		}
		for (size_t i = 0; i < n; i++) {
			const mqlog_record *r = &recs[i];
			unsigned kid, inc, seq;
			char v[64], k[16];
			bool ok = r->value.len < sizeof v &&
				  r->key.len < sizeof k;
			if (ok) {
				memcpy(v, r->value.data, r->value.len);
				v[r->value.len] = 0;
				memcpy(k, r->key.data, r->key.len);
				k[r->key.len] = 0;
				ok = sscanf(v, "%u:%u:%u", &kid, &inc, &seq) ==
				     3;
			}
			if (ok) {
				char want[16];
				snprintf(want, sizeof want, "key-%u", kid);
				ok = !strcmp(k, want);
			}
			if (!ok || (next[r->partition] != UINT64_MAX &&
				    r->offset != next[r->partition])) {
				fprintf(stderr,
					"chaos reader: bad record at %u/%" PRIu64
					"\n",
					r->partition, r->offset);
				say(&(struct cmsg){ M_ERROR, who, r->partition,
						    0, r->offset, 0, 0 });
				_exit(4);
			}
			next[r->partition] = r->offset + 1;
			say(&(struct cmsg){ M_READ, who, r->partition, 0,
					    r->offset, 0, 0 });
		}
	}
	mqlog_consumer_close(c);
	mqlog_topic_close(t);
	mqlog_close(db);
	_exit(0);
}

/* ------------------------------------------------------------------------ */
/* The checker                                                              */
/* ------------------------------------------------------------------------ */

/* What the checker knows about one offset of one partition. */
struct slot {
	bool acked;	       /* a producer reported it */
	uint32_t key;	       /* its key id */
	uint64_t order;	       /* incarnation << 32 | seq */
	uint32_t deliveries;   /* times handed to the group */
	uint64_t first_member; /* member that got it first */
	uint64_t first_gen;    /* the generation it got it in */
};

struct part_log {
	struct slot *s;
	size_t cap;
	uint64_t read_max; /* the standalone reader got this far (+1) */
};

/* A record handed out a second time, judged at the end. */
struct dup {
	uint32_t part;
	uint64_t off, first, second;
};

/* Ownership claims (generation, partition) -> member. */
struct claim {
	uint64_t gen, member;
	uint32_t part;
};

#define MAXMEMBERS 4096

static struct {
	struct part_log p[NPART];
	struct claim *claims;
	size_t nclaims, capclaims;
	/* member id -> its last committed offsets, killed/stalled */
	struct {
		uint64_t id;
		uint64_t committed[NPART];
		bool suspect; /* killed or stopped long enough to lose its lease
			       */
	} members[MAXMEMBERS];
	size_t nmembers;
	struct dup *dupl;
	size_t ndup, capdup;
	unsigned long lost;
	unsigned long acks, deliveries, dups, reads, kills, stops, conts;
	unsigned long respawns;
} K;

static struct slot *slot_of(uint32_t part, uint64_t off)
{
	struct part_log *pl = &K.p[part];
	if (off >= pl->cap) {
		size_t ncap = pl->cap ? pl->cap : 1024;
		while (ncap <= off)
			ncap *= 2;
		pl->s = realloc(pl->s, ncap * sizeof *pl->s);
		ck_assert_ptr_nonnull(pl->s);
		memset(pl->s + pl->cap, 0, (ncap - pl->cap) * sizeof *pl->s);
		pl->cap = ncap;
	}
	return &pl->s[off];
}

static int member_slot(uint64_t id)
{
	for (size_t i = 0; i < K.nmembers; i++)
		if (K.members[i].id == id)
			return (int)i;
	ck_assert_uint_lt(K.nmembers, MAXMEMBERS);
	memset(&K.members[K.nmembers], 0, sizeof K.members[0]);
	K.members[K.nmembers].id = id;
	return (int)K.nmembers++;
}

/* The member id each process slot runs now (0: none yet). */
static uint64_t slot_member[NPROC];

static void on_msg(const struct cmsg *m)
{
	struct slot *s;

	switch (m->kind) {
	case M_HELLO:
		slot_member[m->who] = m->b;
		member_slot(m->b);
		break;
	case M_ACK:
		ck_assert_uint_lt(m->part, NPART);
		s = slot_of(m->part, m->off);
		ck_assert_msg(!s->acked,
			      "offset %u/%" PRIu64 " acknowledged twice",
			      m->part, m->off);
		s->acked = true;
		s->key = m->key;
		s->order = m->a;
		K.acks++;
		break;
	case M_DELIVER: {
		ck_assert_uint_lt(m->part, NPART);
		s = slot_of(m->part, m->off);
		int mi = member_slot(m->a);
		if (s->deliveries++ == 0) {
			s->first_member = m->a;
			s->first_gen = m->b;
		} else {
			/* Twice: only after the first member crashed or
			 * lost its lease (judged at the end, when every LOST
			 * is in), and never below what it committed.  A
			 * report from an older generation than the first
			 * one comes from a member stopped between its poll
			 * and its report: its poll handed the record out
			 * first, while it still owned the partition. */
			uint64_t first = s->first_member, second = m->a;
			uint64_t first_commit;
			if (m->b < s->first_gen) {
				first = m->a;
				second = s->first_member;
				s->first_member = m->a;
				s->first_gen = m->b;
			}
			int fi = member_slot(first);
			if (K.ndup == K.capdup) {
				K.capdup = K.capdup ? K.capdup * 2 : 64;
				K.dupl = realloc(K.dupl,
						 K.capdup * sizeof *K.dupl);
				ck_assert_ptr_nonnull(K.dupl);
			}
			K.dupl[K.ndup++] =
				(struct dup){ m->part, m->off, first, second };
			first_commit = K.members[fi].committed[m->part];
			ck_assert_msg(m->off >= first_commit,
				      "%u/%" PRIu64
				      " handed out again below its "
				      "member's commit %" PRIu64,
				      m->part, m->off, first_commit);
			K.dups++;
		}
		(void)mi;
		/* One member per (generation, partition). */
		for (size_t i = K.nclaims; i-- > 0;) {
			struct claim *c = &K.claims[i];
			if (c->part != m->part || c->gen != m->b)
				continue;
			ck_assert_msg(
				c->member == m->a,
				"partition %u handed out by members %" PRIx64
				" and %" PRIx64 " in generation %" PRIu64,
				m->part, c->member, m->a, m->b);
			goto claimed;
		}
		if (K.nclaims == K.capclaims) {
			K.capclaims = K.capclaims ? K.capclaims * 2 : 256;
			K.claims = realloc(K.claims,
					   K.capclaims * sizeof *K.claims);
			ck_assert_ptr_nonnull(K.claims);
		}
		K.claims[K.nclaims++] = (struct claim){ m->b, m->a, m->part };
claimed:
		K.deliveries++;
		break;
	}
	case M_COMMITTED: {
		int mi = member_slot(m->a);
		if (m->off > K.members[mi].committed[m->part])
			K.members[mi].committed[m->part] = m->off;
		break;
	}
	case M_LOST:
		K.members[member_slot(m->b)].suspect = true;
		K.lost++;
		break;
	case M_READ:
		if (m->off + 1 > K.p[m->part].read_max)
			K.p[m->part].read_max = m->off + 1;
		K.reads++;
		break;
	case M_ERROR:
		ck_abort_msg("a chaos child (slot %u) failed; see its stderr",
			     m->who);
		break;
	default:
		ck_abort_msg("bad report %u", m->kind);
	}
}

static void drain(int fd, int timeout_ms)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	static uint8_t buf[sizeof(struct cmsg) * 512];
	static size_t have;

	while (poll(&pfd, 1, timeout_ms) > 0) {
		ssize_t k = read(fd, buf + have, sizeof buf - have);
		if (k <= 0)
			break;
		have += (size_t)k;
		size_t n = have / sizeof(struct cmsg);
		for (size_t i = 0; i < n; i++) {
			struct cmsg m;
			memcpy(&m, buf + i * sizeof m, sizeof m);
			on_msg(&m);
		}
		memmove(buf, buf + n * sizeof(struct cmsg),
			have - n * sizeof(struct cmsg));
		have -= n * sizeof(struct cmsg);
		timeout_ms = 0;
	}
}

/* ------------------------------------------------------------------------ */
/* Processes and the nemesis                                                */
/* ------------------------------------------------------------------------ */

static pid_t pids[NPROC];
static bool stopped[NPROC];
static unsigned incarnation[NPROC];
static pid_t checker; /* the parent */

/* A failed check ends the parent early: take the children along. */
static void kill_children(void)
{
	if (getpid() != checker)
		return;
	for (unsigned w = 0; w < NPROC; w++)
		if (pids[w] > 0) {
			kill(pids[w], SIGKILL);
			(void)waitpid(pids[w], NULL, 0);
			pids[w] = 0;
		}
}

static void spawn(const char *dir, unsigned who)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct sigaction sa;
		/* Never outlive the checker (a stopped orphan would hold the
		 * test's output open). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(0);
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_term;
		sigaction(SIGTERM, &sa, NULL);
		if (who < NPROD)
			producer(dir, who, incarnation[who]);
		else if (who < NPROD + NCONS)
			member(dir, who);
		else
			tail_reader(dir, who);
		_exit(0);
	}
	pids[who] = pid;
	stopped[who] = false;
	slot_member[who] = 0;
	incarnation[who]++;
}

/* Mark the member a process runs as a suspect (killed or stalled). */
static void suspect(unsigned who)
{
	if (who >= NPROD && who < NPROD + NCONS && slot_member[who])
		K.members[member_slot(slot_member[who])].suspect = true;
}

static void chaos(const char *dir, int fd, double seconds)
{
	uint64_t rng = bt_env_ul("MQLOG_CHAOS_SEED", 3) * 2654435761u + 1;
	double t0 = h_mono_ms(), stop_until[NPROC] = { 0 };

	checker = getpid();
	atexit(kill_children);
	for (unsigned w = 0; w < NPROC; w++)
		spawn(dir, w);
	while (h_mono_ms() - t0 < seconds * 1000) {
		/* One action every 100..300 ms; reports drained meanwhile. */
		double until = h_mono_ms() + 100 + (double)(h_rand(&rng) % 200);
		while (h_mono_ms() < until)
			drain(fd, (int)(until - h_mono_ms()) + 1);
		for (unsigned w = 0; w < NPROC; w++)
			if (stopped[w] && h_mono_ms() >= stop_until[w]) {
				kill(pids[w], SIGCONT);
				stopped[w] = false;
				K.conts++;
			}
		unsigned w = (unsigned)(h_rand(&rng) % NPROC);
		unsigned action = (unsigned)(h_rand(&rng) % 10);
		if (action < 3) {
			/* SIGKILL, then a new incarnation. */
			drain(fd, 0);
			suspect(w);
			kill(pids[w], SIGKILL);
			ck_assert_int_eq(waitpid(pids[w], NULL, 0), pids[w]);
			drain(fd, 0);
			K.kills++;
			spawn(dir, w);
			K.respawns++;
		} else if (action < 6 && !stopped[w]) {
			/* SIGSTOP for 20..600 ms (past the lease of 300 ms
			 * sometimes). */
			double ms = 20 + (double)(h_rand(&rng) % 580);
			if (ms >= 150)
				suspect(w);
			kill(pids[w], SIGSTOP);
			stopped[w] = true;
			stop_until[w] = h_mono_ms() + ms;
			K.stops++;
		}
	}
	for (unsigned w = 0; w < NPROC; w++)
		if (stopped[w]) {
			kill(pids[w], SIGCONT);
			stopped[w] = false;
			K.conts++;
		}
}

static uint64_t group_lag(mqlog *db, size_t *live)
{
	mqlog_group_info *g = NULL;
	size_t n = 0;
	uint64_t lag = UINT64_MAX;

	*live = 0;
	ck_assert_int_eq(mqlog_group_list(db, &g, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(g[i].group, "g")) {
			lag = g[i].lag;
			*live = g[i].live_members;
		}
	mqlog_group_info_free(g, n);
	return lag;
}

static void finish_and_check(const char *dir, int fd)
{
	mqlog *db;
	mqlog_topic *t;
	char why[512];
	uint64_t lag = UINT64_MAX;
	size_t live = 0;
	double t0;

	/* Producers stop; members and the reader drain what is left. */
	for (unsigned w = 0; w < NPROD; w++) {
		kill(pids[w], SIGTERM);
		while (waitpid(pids[w], NULL, WNOHANG) == 0)
			drain(fd, 10);
	}
	drain(fd, 0);
	db = h_open(dir);
	t0 = h_mono_ms();
	while (h_mono_ms() - t0 < 60000) {
		drain(fd, 50);
		lag = group_lag(db, &live);
		if (lag == 0 && live == NCONS)
			break;
	}
	ck_assert_msg(lag == 0,
		      "the group's lag is still %" PRIu64
		      " (%zu live members) after 60 s",
		      lag, live);
	for (unsigned w = NPROD; w < NPROC; w++) {
		kill(pids[w], SIGTERM);
		while (waitpid(pids[w], NULL, WNOHANG) == 0)
			drain(fd, 10);
	}
	drain(fd, 0);

	for (size_t i = 0; i < K.ndup; i++) {
		const struct dup *d = &K.dupl[i];
		ck_assert_msg(K.members[member_slot(d->first)].suspect ||
				      d->first == d->second,
			      "%u/%" PRIu64 " handed to member %" PRIx64
			      " and again to %" PRIx64
			      ", though the first neither crashed nor lost its "
			      "lease",
			      d->part, d->off, d->first, d->second);
	}

	/* The final log against everything reported. */
	t = h_topic(db, "c");
	for (uint32_t p = 0; p < NPART; p++) {
		mqlog_reader *r;
		mqlog_record rec;
		uint64_t last[NPROD * NKEYS] = { 0 };
		uint64_t next = 0;
		int rc;
		struct part_log *pl = &K.p[p];
		ck_assert_int_eq(mqlog_reader_open(t, p, &r), 0);
		while ((rc = mqlog_reader_next(r, &rec)) == 1) {
			unsigned kid, inc, seq;
			char v[64];
			ck_assert_uint_eq(rec.offset, next);
			ck_assert_uint_lt(rec.value.len, sizeof v);
			memcpy(v, rec.value.data, rec.value.len);
			v[rec.value.len] = 0;
			ck_assert_int_eq(
				sscanf(v, "%u:%u:%u", &kid, &inc, &seq), 3);
			ck_assert_uint_lt(kid, NPROD * NKEYS);
			uint64_t order = (uint64_t)inc << 32 | seq;
			ck_assert_msg(order > last[kid] ||
					      (!last[kid] && !order),
				      "key-%u out of order at %u/%" PRIu64, kid,
				      p, next);
			last[kid] = order;
			struct slot *s = slot_of(p, next);
			if (s->acked)
				ck_assert_msg(
					s->key == kid && s->order == order,
					"%u/%" PRIu64 " is not the record "
					"that was acknowledged",
					p, next);
			ck_assert_msg(s->deliveries > 0,
				      "%u/%" PRIu64
				      " was never handed to the group",
				      p, next);
			next++;
		}
		ck_assert_int_eq(rc, 0);
		mqlog_reader_close(r);
		for (uint64_t o = next; o < pl->cap; o++)
			ck_assert_msg(!pl->s[o].acked,
				      "acknowledged %u/%" PRIu64
				      " is lost (log "
				      "ends at %" PRIu64 ")",
				      p, o, next);
		ck_assert_msg(pl->read_max <= next,
			      "the reader read %u/%" PRIu64 ", the log ends at "
			      "%" PRIu64,
			      p, pl->read_max - 1, next);
	}
	ck_assert_msg(bt_verify(db, NULL, why, sizeof why) == 0, "%s", why);
	mqlog_topic_close(t);
	mqlog_close(db);
}

static bool soak;

START_TEST(test_chaos)
{
	char *dir = fx_tmpdir();
	mqlog_topic_config c = h_cfg(NPART, 64 * 1024, MQLOG_SYNC_ALWAYS);
	mqlog *db;
	int fds[2];
	double secs = soak ? (double)bt_env_ul("MQLOG_SOAK_SECONDS", 600) :
			     (double)bt_env_ul("MQLOG_CHAOS_SECONDS",
					       BT_SANITIZED ? 6 : 12);

	c.index_interval_bytes = 512;
	db = h_open(dir);
	h_create(db, "c", &c);
	mqlog_close(db);
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	(void)fcntl(fds[0], F_SETPIPE_SZ, 1 << 20);
	report_fd = fds[1];
	signal(SIGPIPE, SIG_IGN);
	chaos(dir, fds[0], secs);
	finish_and_check(dir, fds[0]);
	close(fds[0]);
	close(fds[1]);
	printf("chaos: %.0f s: %lu SIGKILL, %lu SIGSTOP, %lu SIGCONT, %lu "
	       "respawns; %lu records acknowledged, %lu handed to the group "
	       "(%lu again after a crash or a lost lease), %lu read by the "
	       "tailing reader; %zu group members over the run, %lu leases "
	       "lost\n",
	       secs, K.kills, K.stops, K.conts, K.respawns, K.acks,
	       K.deliveries, K.dups, K.reads, K.nmembers, K.lost);
	for (uint32_t p = 0; p < NPART; p++)
		free(K.p[p].s);
	free(K.claims);
	free(K.dupl);
	fx_rmtree(dir);
	free(dir);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s = suite_create("chaos");
	TCase *tc = tcase_create("chaos");
	SRunner *sr;
	int nf;

	soak = argc > 1 && !strcmp(argv[1], "--soak");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(
		tc, soak ? (double)bt_env_ul("MQLOG_SOAK_SECONDS", 600) + 300 :
			   300);
	tcase_add_test(tc, test_chaos);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
