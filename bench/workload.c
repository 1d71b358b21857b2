/*
 * workload.c - producers, consumers and e2e consumers, run as threads or
 * as processes, and the workloads built from them.
 *
 * A crew is a set of workers that start together: each worker builds
 * everything its loop needs (payload, message array, buffers, readers),
 * reports ready, and waits at the gate; the gate opens when every worker is
 * ready, so setup is never timed and no worker gets a head start.
 *
 *   threads     the gate is a condition variable; workers share the
 *               parent's engine context (one mqlog handle, as an
 *               application's threads would);
 *   processes   each worker is this program exec'd again ("__worker"),
 *               which opens the data directory itself; it writes 'R' on
 *               its result pipe (fd 3) when ready, starts when the gate
 *               pipe (fd 4) reaches EOF, and writes its struct wres whole
 *               on fd 3 at the end.
 *
 * Timing uses CLOCK_MONOTONIC, which is the same clock in every process,
 * so a latency can start in a producer process and end in a consumer
 * process.  A case's throughput is its records over the span from the
 * earliest worker start to the latest worker end.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Crew and workers                                                         */
/* ------------------------------------------------------------------------ */

struct crew {
	const struct bench_opts *o;
	bool child;	    /* this process is one worker: gate on fds 3/4 */
	pthread_mutex_t mu; /* guards ready, done, go */
	pthread_cond_t cv;  /* signalled when they change */
	unsigned ready;	    /* workers at the gate */
	unsigned done;	    /* workers finished */
	bool go;	    /* the gate is open */
	int abort;	    /* a worker failed: the others stop waiting */
	uint64_t progress;  /* records handled so far (atomic) */
};

struct worker {
	struct crew *crew;	      /* the crew it belongs to */
	enum role role;		      /* what it does */
	unsigned id;		      /* 0.. among the workers of its role */
	const struct bench_opts *o;   /* options of this case */
	const struct engine_ops *ops; /* the engine */
	void *ectx;		      /* its context (shared by threads) */
	struct wres res;	      /* what it reports */
	pthread_t thread;	      /* thread mode */
	pid_t pid;		      /* process mode: the child */
	int res_fd;		      /* process mode: its result pipe */
	size_t res_got;		      /* bytes of res read so far */
};

static const char *role_name(enum role r)
{
	switch (r) {
	case ROLE_PRODUCER:
		return "producer";
	case ROLE_CONSUMER:
		return "consumer";
	default:
		return "e2e-consumer";
	}
}

static void crew_init(struct crew *c, const struct bench_opts *o, bool child)
{
	memset(c, 0, sizeof *c);
	c->o = o;
	c->child = child;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
}

static void crew_destroy(struct crew *c)
{
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
}

static void worker_fail(struct worker *w, int rc, const char *msg)
{
	if (w->res.rc)
		return;
	w->res.rc = rc ? rc : -1;
	snprintf(w->res.err, sizeof w->res.err, "%s %u: %s", role_name(w->role),
		 w->id, msg);
	__atomic_store_n(&w->crew->abort, 1, __ATOMIC_RELAXED);
}

/* Report ready and wait for the gate. */
static void gate(struct worker *w)
{
	struct crew *c = w->crew;

	if (c->child) {
		char tag = 'R', b;
		ssize_t n;

		(void)write_full(3, &tag, 1);
		do
			n = read(4, &b, 1);
		while (n > 0 || (n < 0 && errno == EINTR));
		return;
	}
	pthread_mutex_lock(&c->mu);
	c->ready++;
	pthread_cond_broadcast(&c->cv);
	while (!c->go)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

static void progress_add(struct worker *w, uint64_t n)
{
	__atomic_add_fetch(&w->crew->progress, n, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------ */
/* Producer                                                                 */
/* ------------------------------------------------------------------------ */

/* Records producer @id appends: its share of o->count. */
static uint64_t producer_share(const struct bench_opts *o, unsigned id)
{
	return o->count / o->producers + (id < o->count % o->producers ? 1 : 0);
}

void expected_per_partition(const struct bench_opts *o, uint64_t *per_part)
{
	uint32_t P = o->partitions;

	memset(per_part, 0, P * sizeof *per_part);
	for (unsigned t = 0; t < o->producers; t++) {
		uint64_t c = producer_share(o, t);
		uint64_t k = o->batch;
		uint64_t full = c / k, rem = c % k;
		uint32_t first = t % P;

		/* Batch j goes to partition (first + j) % P. */
		for (uint32_t p = 0; p < P; p++) {
			uint32_t d = (p + P - first) % P; /* first j for p */
			uint64_t nb = full > d ? (full - d + P - 1) / P : 0;

			per_part[p] += nb * k;
		}
		if (rem)
			per_part[(first + full % P) % P] += rem;
	}
}

/*
 * Append this producer's share in batches of o->batch, round-robin over the
 * partitions from partition id % P.  In e2e mode every record carries the
 * send time (8 bytes, CLOCK_MONOTONIC ns) at the start of its value; with
 * o->rate the batches follow a fixed schedule and the stamp is the
 * scheduled time, so a producer that falls behind shows up as latency
 * (no coordinated omission).
 */
static void producer_loop(struct worker *w)
{
	const struct bench_opts *o = w->o;
	struct wres *res = &w->res;
	uint64_t share = producer_share(o, w->id);
	uint64_t k = o->batch < share ? o->batch : share;
	uint64_t slices, left = share, b;
	uint32_t part = w->id % o->partitions;
	bool stamp = o->mode == MODE_E2E;
	bool count_progress = o->mode != MODE_E2E;
	unsigned char *payload = NULL;
	mqlog_msg *msgs = NULL;
	void *tctx = NULL;
	double interval = 0;
	uint64_t start;

	if (!k) {
		gate(w);
		res->start_ns = res->end_ns = now_ns();
		return;
	}
	/* Everything the loop needs, built once: k message structs pointing
	 * into one payload of distinct bytes; large records share slices so
	 * that the payload stays bounded. */
	slices = o->size ? PAYLOAD_CAP / o->size : k;
	if (slices < 1)
		slices = 1;
	if (slices > k)
		slices = k;
	payload = malloc(o->size ? (size_t)(slices * o->size) : 1);
	msgs = calloc((size_t)k, sizeof *msgs);
	if (!payload || !msgs) {
		worker_fail(w, -ENOMEM, "out of memory");
	} else {
		fill_payload(payload, (size_t)(slices * o->size), w->id);
		for (uint64_t i = 0; i < k; i++) {
			msgs[i].value.data = payload + (i % slices) * o->size;
			msgs[i].value.len = (size_t)o->size;
			msgs[i].timestamp = MQLOG_TIMESTAMP_NOW;
		}
		if (w->ops->thread_init &&
		    w->ops->thread_init(w->ectx, &tctx) != 0)
			worker_fail(w, -1, bench_errmsg());
	}
	if (o->rate)
		interval = 1e9 * (double)k * (double)o->producers /
			   (double)o->rate;

	gate(w);
	start = now_ns();
	res->start_ns = start;
	for (b = 0; left && !res->rc; b++) {
		size_t n = (size_t)(left < k ? left : k);
		uint64_t ts, t0;

		if (interval > 0) {
			ts = start + (uint64_t)((double)b * interval);
			pace_until(ts);
		} else {
			ts = now_ns();
		}
		if (stamp)
			for (size_t i = 0; i < n; i++)
				memcpy(payload + (i % slices) * o->size, &ts,
				       sizeof ts);
		t0 = now_ns();
		if (w->ops->append(w->ectx, tctx, part, msgs, n) != 0) {
			worker_fail(w, -1, bench_errmsg());
			break;
		}
		hist_add(&res->hist, now_ns() - t0);
		if (count_progress)
			progress_add(w, n);
		left -= n;
		if (++part == o->partitions)
			part = 0;
	}
	res->end_ns = now_ns();
	res->records = share - left;
	res->bytes = res->records * o->size;
	if (tctx)
		w->ops->thread_fini(w->ectx, tctx);
	free(msgs);
	free(payload);
}

/* ------------------------------------------------------------------------ */
/* Consumer                                                                 */
/* ------------------------------------------------------------------------ */

/* Read partitions id, id + C, ... to their end. */
static void consumer_loop(struct worker *w)
{
	const struct bench_opts *o = w->o;
	struct read_tally tally = { 0, 0, 0 };
	void *tctx = NULL;

	if (w->ops->thread_init && w->ops->thread_init(w->ectx, &tctx) != 0)
		worker_fail(w, -1, bench_errmsg());
	gate(w);
	w->res.start_ns = now_ns();
	for (uint32_t p = w->id; p < o->partitions && !w->res.rc;
	     p += o->consumers) {
		uint64_t before = tally.records;

		if (w->ops->read_part(w->ectx, tctx, p, &tally) != 0)
			worker_fail(w, -1, bench_errmsg());
		progress_add(w, tally.records - before);
	}
	w->res.end_ns = now_ns();
	w->res.records = tally.records;
	w->res.bytes = tally.bytes;
	w->res.sum = tally.sum;
	if (tctx)
		w->ops->thread_fini(w->ectx, tctx);
}

/* ------------------------------------------------------------------------ */
/* E2E consumer                                                             */
/* ------------------------------------------------------------------------ */

/* No record for this long while some are expected: give up. */
#define E2E_IDLE_LIMIT_NS (60ull * 1000000000u)

/*
 * Follow partitions id, id + C, ... and record, for every record, the time
 * from its stamp to the return of the read that delivered it.  With one
 * partition the consumer blocks in mqlog_reader_wait(); with several it
 * polls them in turn and, after a pass that found nothing, waits on the
 * next one for at most 1 ms (a reader waits on one partition only).
 */
static void e2e_consumer_loop(struct worker *w)
{
	const struct bench_opts *o = w->o;
	mqlog_topic *t = engine_mqlog_topic(w->ectx);
	uint32_t m = 0, j, turn = 0;
	uint64_t *per_part = NULL, total = 0, got = 0, idle_since;
	mqlog_reader **rd = NULL;
	uint64_t *want = NULL, *have = NULL;
	mqlog_record *recs = NULL;
	int rc;

	for (uint32_t p = w->id; p < o->partitions; p += o->consumers)
		m++;
	per_part = calloc(o->partitions, sizeof *per_part);
	rd = calloc(m ? m : 1, sizeof *rd);
	want = calloc(m ? m : 1, sizeof *want);
	have = calloc(m ? m : 1, sizeof *have);
	recs = calloc(READ_CHUNK, sizeof *recs);
	if (!per_part || !rd || !want || !have || !recs) {
		worker_fail(w, -ENOMEM, "out of memory");
	} else {
		expected_per_partition(o, per_part);
		for (j = 0; j < m; j++) {
			uint32_t p = w->id + j * o->consumers;

			want[j] = per_part[p];
			total += want[j];
			rc = mqlog_reader_open(t, p, &rd[j]);
			if (rc) {
				char msg[400];

				snprintf(msg, sizeof msg,
					 "reader on partition %u: %s (%s)",
					 (unsigned)p, mqlog_errmsg(NULL),
					 mqlog_strerror(rc));
				worker_fail(w, rc, msg);
				break;
			}
		}
	}

	gate(w);
	w->res.start_ns = now_ns();
	idle_since = w->res.start_ns;
	while (got < total && !w->res.rc) {
		uint64_t pass = 0;

		for (j = 0; j < m; j++) {
			size_t n = 0;
			uint64_t now;

			if (have[j] >= want[j])
				continue;
			rc = mqlog_reader_read(rd[j], recs, READ_CHUNK, &n);
			if (rc) {
				char msg[400];

				snprintf(msg, sizeof msg, "read: %s (%s)",
					 mqlog_errmsg(NULL),
					 mqlog_strerror(rc));
				worker_fail(w, rc, msg);
				break;
			}
			if (!n)
				continue;
			now = now_ns();
			for (size_t i = 0; i < n; i++) {
				uint64_t ts;

				if (recs[i].value.len < sizeof ts) {
					worker_fail(w, -1,
						    "a record without a stamp");
					break;
				}
				memcpy(&ts, recs[i].value.data, sizeof ts);
				hist_add(&w->res.hist, now > ts ? now - ts : 0);
				w->res.bytes += recs[i].value.len;
			}
			have[j] += n;
			pass += n;
		}
		if (pass) {
			got += pass;
			progress_add(w, pass);
			idle_since = now_ns();
			continue;
		}
		if (w->res.rc)
			break;
		/* Nothing new: sleep on one partition that still expects
		 * records (or, with --spin, look again at once). */
		if (o->spin) {
			if (__atomic_load_n(&w->crew->abort, __ATOMIC_RELAXED))
				break;
			if (now_ns() - idle_since > E2E_IDLE_LIMIT_NS) {
				worker_fail(w, MQLOG_ETIMEDOUT,
					    "no record for 60 s");
				break;
			}
			continue;
		}
		for (j = 0; j < m; j++) {
			uint32_t x = (turn + j) % m;

			if (have[x] < want[x])
				break;
		}
		j = (turn + j) % m;
		turn = j + 1;
		rc = mqlog_reader_wait(rd[j], m == 1 ? 100 : 1);
		if (rc && rc != MQLOG_ETIMEDOUT) {
			worker_fail(w, rc, "wait failed");
			break;
		}
		if (rc == MQLOG_ETIMEDOUT) {
			if (__atomic_load_n(&w->crew->abort, __ATOMIC_RELAXED))
				break;
			if (now_ns() - idle_since > E2E_IDLE_LIMIT_NS) {
				worker_fail(w, MQLOG_ETIMEDOUT,
					    "no record for 60 s");
				break;
			}
		}
	}
	w->res.end_ns = now_ns();
	w->res.records = got;
	if (rd)
		for (j = 0; j < m; j++)
			mqlog_reader_close(rd[j]);
	free(rd);
	free(want);
	free(have);
	free(recs);
	free(per_part);
}

static void worker_run(struct worker *w)
{
	switch (w->role) {
	case ROLE_PRODUCER:
		producer_loop(w);
		break;
	case ROLE_CONSUMER:
		consumer_loop(w);
		break;
	case ROLE_E2E_CONSUMER:
		e2e_consumer_loop(w);
		break;
	}
}

static void *worker_thread(void *arg)
{
	struct worker *w = arg;

	worker_run(w);
	pthread_mutex_lock(&w->crew->mu);
	w->crew->done++;
	pthread_cond_broadcast(&w->crew->cv);
	pthread_mutex_unlock(&w->crew->mu);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Running a crew                                                           */
/* ------------------------------------------------------------------------ */

static void show_progress(const struct bench_opts *o, const char *label,
			  uint64_t done, uint64_t total, uint64_t t0,
			  unsigned finished, unsigned n)
{
	double secs = (double)(now_ns() - t0) / 1e9;

	if (total)
		progress_show(o,
			      "%s: %3.0f%% %" PRIu64 "/%" PRIu64
			      " records, %.1f s",
			      label, 100.0 * (double)done / (double)total, done,
			      total, secs);
	else
		progress_show(o, "%s: %u/%u workers done, %.1f s", label,
			      finished, n, secs);
}

static void run_threads(struct crew *c, struct worker *ws, unsigned n,
			const char *label, uint64_t total)
{
	const struct bench_opts *o = c->o;
	uint64_t t0;

	for (unsigned i = 0; i < n; i++) {
		int e = pthread_create(&ws[i].thread, NULL, worker_thread,
				       &ws[i]);
		if (e)
			die("pthread_create: %s", strerror(e));
	}
	pthread_mutex_lock(&c->mu);
	while (c->ready < n)
		pthread_cond_wait(&c->cv, &c->mu);
	c->go = true;
	pthread_cond_broadcast(&c->cv);
	t0 = now_ns();
	while (c->done < n) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
		if (c->done < n && o->progress)
			show_progress(o, label,
				      __atomic_load_n(&c->progress,
						      __ATOMIC_RELAXED),
				      total, t0, c->done, n);
	}
	pthread_mutex_unlock(&c->mu);
	for (unsigned i = 0; i < n; i++)
		pthread_join(ws[i].thread, NULL);
}

static void kill_children(struct worker *ws, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (ws[i].pid > 0 && ws[i].res_fd >= 0)
			kill(ws[i].pid, SIGKILL);
}

static void run_processes(struct crew *c, struct worker *ws, unsigned n,
			  const char *dir, const char *label)
{
	const struct bench_opts *o = c->o;
	char idbuf[16];
	int go[2], left = (int)n, killed = 0;
	struct pollfd *pfd = xcalloc(n, sizeof *pfd);
	uint64_t t0;

	if (pipe2(go, O_CLOEXEC) != 0)
		die("pipe: %s", strerror(errno));
	for (unsigned i = 0; i < n; i++) {
		struct argvb b = { .used = 0, .argc = 0 };

		argvb_add(&b, "mqlog-bench");
		argvb_add(&b, "__worker");
		argvb_add(&b, role_name(ws[i].role));
		snprintf(idbuf, sizeof idbuf, "%u", ws[i].id);
		argvb_add(&b, idbuf);
		argvb_add(&b, dir);
		argvb_add(&b, mode_name(o->mode));
		opts_to_argv(o, &b);
		ws[i].pid = spawn_worker(b.argv, go[0], &ws[i].res_fd);
	}
	close(go[0]);
	/* Everyone ready (or dead) before the gate opens. */
	for (unsigned i = 0; i < n; i++) {
		char tag = 0;

		if (read_full(ws[i].res_fd, &tag, 1) != 1 || tag != 'R')
			snprintf(ws[i].res.err, sizeof ws[i].res.err,
				 "%s %u: the process died before it was "
				 "ready",
				 role_name(ws[i].role), ws[i].id);
	}
	close(go[1]);
	t0 = now_ns();
	/* Collect the results; a failure stops everyone. */
	while (left > 0) {
		int k = 0;

		for (unsigned i = 0; i < n; i++)
			if (ws[i].res_fd >= 0) {
				pfd[k].fd = ws[i].res_fd;
				pfd[k].events = POLLIN;
				k++;
			}
		if (poll(pfd, (nfds_t)k, 200) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		for (unsigned i = 0; i < n; i++) {
			struct worker *w = &ws[i];
			short rev = 0;
			ssize_t r;

			if (w->res_fd < 0)
				continue;
			for (int q = 0; q < k; q++)
				if (pfd[q].fd == w->res_fd)
					rev = pfd[q].revents;
			if (!rev)
				continue;
			r = read(w->res_fd, (char *)&w->res + w->res_got,
				 sizeof w->res - w->res_got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r > 0) {
				w->res_got += (size_t)r;
				if (w->res_got < sizeof w->res)
					continue;
			}
			close(w->res_fd);
			w->res_fd = -1;
			left--;
			if (w->res_got < sizeof w->res) {
				w->res.rc = -1;
				if (!w->res.err[0] || w->res_got)
					snprintf(w->res.err, sizeof w->res.err,
						 "%s %u: the process died",
						 role_name(w->role), w->id);
			}
			if (w->res.rc && !killed) {
				kill_children(ws, n);
				killed = 1;
			}
		}
		if (left > 0 && o->progress)
			show_progress(o, label, 0, 0, t0, n - (unsigned)left,
				      n);
	}
	for (unsigned i = 0; i < n; i++) {
		int st;

		while (waitpid(ws[i].pid, &st, 0) < 0 && errno == EINTR)
			;
		if (!ws[i].res.rc && (!WIFEXITED(st) || WEXITSTATUS(st))) {
			ws[i].res.rc = -1;
			snprintf(ws[i].res.err, sizeof ws[i].res.err,
				 "%s %u: exit status %d", role_name(ws[i].role),
				 ws[i].id,
				 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		}
	}
	free(pfd);
}

/*
 * Run @n workers (threads, or processes when o->processes and @dir is
 * set) and exit with their messages when any failed.
 */
static void run_crew(const struct bench_opts *o, struct worker *ws, unsigned n,
		     const char *dir, const char *label, uint64_t total)
{
	struct crew c;
	bool failed = false;

	crew_init(&c, o, false);
	for (unsigned i = 0; i < n; i++) {
		ws[i].crew = &c;
		ws[i].o = o;
		ws[i].res_fd = -1;
	}
	if (o->processes && dir)
		run_processes(&c, ws, n, dir, label);
	else
		run_threads(&c, ws, n, label, total);
	progress_clear(o);
	for (unsigned i = 0; i < n; i++) {
		if (ws[i].res.rc) {
			fprintf(stderr, "mqlog-bench: %s\n", ws[i].res.err);
			failed = true;
		}
	}
	crew_destroy(&c);
	if (failed)
		exit(1);
}

/* The span and totals of workers [from, from + n) into @s and @h. */
static void tally(const struct worker *ws, unsigned from, unsigned n,
		  struct sample *s, struct hist *h)
{
	uint64_t start = UINT64_MAX, end = 0;

	memset(s, 0, sizeof *s);
	for (unsigned i = from; i < from + n; i++) {
		if (ws[i].res.start_ns < start)
			start = ws[i].res.start_ns;
		if (ws[i].res.end_ns > end)
			end = ws[i].res.end_ns;
		s->records += ws[i].res.records;
		s->bytes += ws[i].res.bytes;
		if (h)
			hist_merge(h, &ws[i].res.hist);
	}
	s->seconds = end > start ? (double)(end - start) / 1e9 : 0;
	if (h)
		sample_latency(s, h);
}

/* ------------------------------------------------------------------------ */
/* The child side of process mode                                           */
/* ------------------------------------------------------------------------ */

int worker_child_main(int argc, char **argv)
{
	struct bench_opts o;
	struct crew c;
	struct worker w;
	enum role role;
	int status;

	/* __worker ROLE ID DIR MODE OPTIONS... */
	if (argc < 6)
		return 2;
	if (!strcmp(argv[2], "producer"))
		role = ROLE_PRODUCER;
	else if (!strcmp(argv[2], "consumer"))
		role = ROLE_CONSUMER;
	else if (!strcmp(argv[2], "e2e-consumer"))
		role = ROLE_E2E_CONSUMER;
	else
		return 2;
	memset(&o, 0, sizeof o);
	if (!strcmp(argv[5], "produce"))
		o.mode = MODE_PRODUCE;
	else if (!strcmp(argv[5], "consume"))
		o.mode = MODE_CONSUME;
	else if (!strcmp(argv[5], "e2e"))
		o.mode = MODE_E2E;
	else
		return 2;
	parse_options(argc, argv, 6, &o, false);

	crew_init(&c, &o, true);
	memset(&w, 0, sizeof w);
	w.crew = &c;
	w.role = role;
	w.id = (unsigned)strtoul(argv[3], NULL, 10);
	w.o = &o;
	w.ops = &engine_mqlog;
	w.res_fd = 3;
	/* This process's own handle on the directory, opened after exec. */
	if (w.ops->open(&o, argv[4], false, &w.ectx) != 0) {
		worker_fail(&w, -1, bench_errmsg());
		gate(&w);
	} else {
		worker_run(&w);
		w.ops->close(w.ectx);
	}
	status = write_full(3, &w.res, sizeof w.res) == 0 && !w.res.rc ? 0 : 1;
	crew_destroy(&c);
	return status;
}

/* ------------------------------------------------------------------------ */
/* Workloads                                                                */
/* ------------------------------------------------------------------------ */

/* Where one run of @engine keeps its data. */
static void run_dir(const struct bench_opts *o, const char *engine,
		    char out[PATH_MAX])
{
	static unsigned seq;
	char name[64];

	if (!bench_root_is_temp() && o->dir) {
		if (!strcmp(engine, "mqlog"))
			snprintf(out, PATH_MAX, "%s", bench_root(o));
		else {
			snprintf(name, sizeof name, "baseline-%s", engine);
			bench_subdir(o, name, out);
		}
		return;
	}
	snprintf(name, sizeof name, "run%u-%s", ++seq, engine);
	bench_subdir(o, name, out);
}

static void run_dir_done(const char *dir)
{
	if (bench_root_is_temp())
		rmtree(dir);
}

static void case_params_of(const struct bench_opts *o, struct case_params *p)
{
	p->size = o->size;
	p->count = o->count;
	p->batch = o->batch;
	p->rate = o->rate;
	p->partitions = o->partitions;
	p->producers = o->producers;
	p->consumers = o->consumers;
	p->sync = o->sync;
	p->processes = o->processes;
}

static void add_sample(struct results *r, const struct bench_opts *o,
		       const char *workload, const char *engine,
		       const char *label, const char *point,
		       const struct sample *s, const struct hist *h)
{
	struct case_params par;
	struct bcase *c;

	case_params_of(o, &par);
	c = results_case(r, workload, engine, label, point, KIND_RATE, &par);
	case_add(c, s, h);
}

static struct worker *workers(unsigned n)
{
	return xcalloc(n, sizeof(struct worker));
}

/* Producers of @o append o->count records to the open engine. */
static void produce_into(const struct bench_opts *o,
			 const struct engine_ops *ops, void *ectx,
			 const char *dir, const char *label, struct sample *s,
			 struct hist *h)
{
	struct worker *ws = workers(o->producers);

	for (unsigned i = 0; i < o->producers; i++) {
		ws[i].role = ROLE_PRODUCER;
		ws[i].id = i;
		ws[i].ops = ops;
		ws[i].ectx = ectx;
	}
	run_crew(o, ws, o->producers, dir, label, o->count);
	if (s)
		tally(ws, 0, o->producers, s, h);
	free(ws);
}

/* Consumers of @o read every partition of the open engine. */
static void consume_from(const struct bench_opts *o,
			 const struct engine_ops *ops, void *ectx,
			 const char *dir, const char *label, struct sample *s)
{
	struct worker *ws = workers(o->consumers);

	for (unsigned i = 0; i < o->consumers; i++) {
		ws[i].role = ROLE_CONSUMER;
		ws[i].id = i;
		ws[i].ops = ops;
		ws[i].ectx = ectx;
	}
	run_crew(o, ws, o->consumers, dir, label, o->count);
	tally(ws, 0, o->consumers, s, NULL);
	free(ws);
	if (s->records != o->count)
		die("%s: read %" PRIu64 " records, wrote %" PRIu64, ops->name,
		    s->records, o->count);
}

static void open_engine(const struct bench_opts *o,
			const struct engine_ops *ops, const char *dir,
			void **ectx)
{
	settle();
	if (ops->open(o, dir, true, ectx) != 0)
		die("%s", bench_errmsg());
}

static void run_produce(const struct bench_opts *o, struct results *r,
			const char *point, const char *label)
{
	char dir[PATH_MAX];
	struct hist *h = xcalloc(1, sizeof *h);
	struct sample s;
	void *ectx;

	run_dir(o, "mqlog", dir);
	open_engine(o, &engine_mqlog, dir, &ectx);
	produce_into(o, &engine_mqlog, ectx, dir, label, &s, h);
	engine_mqlog.close(ectx);
	run_dir_done(dir);
	add_sample(r, o, "produce", "mqlog", "produce", point, &s, h);
	free(h);
}

static void run_consume(const struct bench_opts *o, struct results *r,
			const char *point, const char *label)
{
	struct bench_opts fill = *o;
	char dir[PATH_MAX], flabel[128];
	struct sample s;
	void *ectx;

	/* The data, written by producer threads (untimed) and synced. */
	fill.processes = false;
	run_dir(o, "mqlog", dir);
	open_engine(o, &engine_mqlog, dir, &ectx);
	snprintf(flabel, sizeof flabel, "%s (writing)", label);
	produce_into(&fill, &engine_mqlog, ectx, NULL, flabel, NULL, NULL);
	if (engine_mqlog.sync(ectx) != 0)
		die("%s", bench_errmsg());
	settle();
	consume_from(o, &engine_mqlog, ectx, dir, label, &s);
	engine_mqlog.close(ectx);
	run_dir_done(dir);
	add_sample(r, o, "consume", "mqlog", "consume", point, &s, NULL);
}

static void run_e2e(const struct bench_opts *o, struct results *r,
		    const char *point, const char *label)
{
	char dir[PATH_MAX], name[64];
	unsigned n = o->producers + o->consumers;
	struct worker *ws = workers(n);
	struct hist *h = xcalloc(1, sizeof *h);
	struct sample s, ps;
	void *ectx;

	run_dir(o, "mqlog", dir);
	open_engine(o, &engine_mqlog, dir, &ectx);
	for (unsigned i = 0; i < n; i++) {
		bool prod = i < o->producers;

		ws[i].role = prod ? ROLE_PRODUCER : ROLE_E2E_CONSUMER;
		ws[i].id = prod ? i : i - o->producers;
		ws[i].ops = &engine_mqlog;
		ws[i].ectx = ectx;
	}
	run_crew(o, ws, n, dir, label, o->count);
	tally(ws, o->producers, o->consumers, &s, h);
	tally(ws, 0, o->producers, &ps, NULL);
	/* From the first append to the last record received. */
	{
		uint64_t start = UINT64_MAX, end = 0;

		for (unsigned i = 0; i < n; i++) {
			if (i < o->producers && ws[i].res.start_ns < start)
				start = ws[i].res.start_ns;
			if (i >= o->producers && ws[i].res.end_ns > end)
				end = ws[i].res.end_ns;
		}
		s.seconds = end > start ? (double)(end - start) / 1e9 : 0;
	}
	if (s.records != o->count)
		die("e2e: received %" PRIu64 " records, sent %" PRIu64,
		    s.records, o->count);
	engine_mqlog.close(ectx);
	run_dir_done(dir);
	if (o->rate)
		snprintf(name, sizeof name, "e2e rate=%" PRIu64 "/s%s", o->rate,
			 o->spin ? " spin" : "");
	else
		snprintf(name, sizeof name, "e2e flat out%s",
			 o->spin ? " spin" : "");
	add_sample(r, o, "e2e", "mqlog", name, point, &s, h);
	free(h);
	free(ws);
}

/* One engine of `compare`: produce (timed), sync, consume (timed). */
static void run_compare_engine(const struct bench_opts *o,
			       const struct engine_ops *ops, struct results *r,
			       const char *point, const char *prefix)
{
	char dir[PATH_MAX], label[128];
	struct hist *h = xcalloc(1, sizeof *h);
	struct sample s;
	void *ectx;

	run_dir(o, ops->name, dir);
	open_engine(o, ops, dir, &ectx);
	snprintf(label, sizeof label, "%sproduce %s", prefix, ops->name);
	produce_into(o, ops, ectx, NULL, label, &s, h);
	add_sample(r, o, "produce", ops->name, "produce", point, &s, h);
	if (ops->sync(ectx) != 0)
		die("%s", bench_errmsg());
	settle();
	snprintf(label, sizeof label, "%sconsume %s", prefix, ops->name);
	consume_from(o, ops, ectx, NULL, label, &s);
	add_sample(r, o, "consume", ops->name, "consume", point, &s, NULL);
	ops->close(ectx);
	run_dir_done(dir);
	free(h);
}

/*
 * One repetition of `compare`: every engine in turn, starting one engine
 * later at each repetition (A B C, B C A, C A B ...).  The first engine of
 * a run writes into memory the previous run just freed, which on some
 * machines costs more than reusing it (a virtual machine whose host takes
 * back free guest pages faults them in again on first touch); rotating
 * gives every engine that slot equally often, and the median discards it.
 */
static void run_compare_rep(const struct bench_opts *o, struct results *r,
			    const char *point, const char *prefix, unsigned rep)
{
	const struct engine_ops *list[ENGINE_COUNT];
	unsigned n = 0;

	for (int e = 0; e < ENGINE_COUNT; e++) {
		const struct engine_ops *ops;

		if (!(o->engines & (1u << e)))
			continue;
		ops = engine_ops_of((enum engine_id)e);
		if (ops)
			list[n++] = ops;
	}
	for (unsigned i = 0; i < n; i++)
		run_compare_engine(o, list[(rep + i) % n], r, point, prefix);
}

static const char *sweep_name(enum sweep_key k)
{
	switch (k) {
	case SWEEP_PARTITIONS:
		return "partitions";
	case SWEEP_SIZE:
		return "size";
	case SWEEP_BATCH:
		return "batch";
	case SWEEP_PRODUCERS:
		return "producers";
	case SWEEP_CONSUMERS:
		return "consumers";
	case SWEEP_RATE:
		return "rate";
	default:
		return "";
	}
}

/* Apply sweep point @i to @o; its label into @point. */
static void apply_point(struct bench_opts *o, unsigned i, char *point,
			size_t len)
{
	uint64_t v;

	point[0] = '\0';
	if (o->sweep == SWEEP_NONE)
		return;
	v = o->sweep_v[i];
	switch (o->sweep) {
	case SWEEP_PARTITIONS:
		o->partitions = (uint32_t)v;
		/* e2e: one consumer per partition unless told otherwise */
		if (o->mode == MODE_E2E && !(o->given & OPT_CONSUMERS))
			o->consumers =
				(unsigned)(v < MAX_THREADS ? v : MAX_THREADS);
		break;
	case SWEEP_SIZE:
		o->size = v;
		break;
	case SWEEP_BATCH:
		o->batch = v;
		break;
	case SWEEP_PRODUCERS:
		o->producers = (unsigned)v;
		break;
	case SWEEP_CONSUMERS:
		o->consumers = (unsigned)v;
		break;
	case SWEEP_RATE:
		o->rate = v;
		break;
	default:
		break;
	}
	snprintf(point, len, "%s=%" PRIu64, sweep_name(o->sweep), v);
}

void run_workload(const struct bench_opts *o0, struct results *r)
{
	unsigned npoints = o0->sweep != SWEEP_NONE ? o0->nsweep : 1;

	/* Repetitions outermost, so that every case of a repetition runs
	 * before any case runs again (A B A B ...): a disturbance of the
	 * machine hits one repetition of several cases, not several
	 * repetitions of one. */
	for (unsigned rep = 0; rep < o0->reps; rep++) {
		for (unsigned pt = 0; pt < npoints; pt++) {
			struct bench_opts o = *o0;
			char point[48], prefix[96], label[160];

			apply_point(&o, pt, point, sizeof point);
			prefix[0] = '\0';
			if (o0->reps > 1)
				snprintf(prefix, sizeof prefix, "run %u/%u ",
					 rep + 1, o0->reps);
			if (point[0]) {
				size_t l = strlen(prefix);

				snprintf(prefix + l, sizeof prefix - l, "%s ",
					 point);
			}
			switch (o.mode) {
			case MODE_PRODUCE:
				snprintf(label, sizeof label, "%sproduce",
					 prefix);
				run_produce(&o, r, point, label);
				break;
			case MODE_CONSUME:
				snprintf(label, sizeof label, "%sconsume",
					 prefix);
				run_consume(&o, r, point, label);
				break;
			case MODE_E2E:
				/* Without --rate (or a rate sweep): a fixed
				 * rate and flat out. */
				if (!(o.given & OPT_RATE) &&
				    o.sweep != SWEEP_RATE) {
					o.rate = E2E_DEFAULT_RATE;
					snprintf(label, sizeof label,
						 "%se2e rate=%u/s", prefix,
						 E2E_DEFAULT_RATE);
					run_e2e(&o, r, point, label);
					o.rate = 0;
				}
				snprintf(label, sizeof label, "%se2e %s",
					 prefix,
					 o.rate ? "fixed rate" : "flat out");
				run_e2e(&o, r, point, label);
				break;
			case MODE_COMPARE:
				run_compare_rep(&o, r, point, prefix, rep);
				break;
			case MODE_RECOVERY:
				break;
			}
		}
	}
}
