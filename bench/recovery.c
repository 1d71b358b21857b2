/*
 * recovery.c - the recovery workload: how long an application waits for
 * its data directory when it starts.
 *
 * Two scenarios, each measured in a fresh process (this program exec'd as
 * "__recovery open DIR"), so that nothing of the writer is cached in the
 * process:
 *
 *   segments    a partition of o->segments segment files (4 KiB segments,
 *               one batch each), written and closed cleanly;
 *   kill -9     a child ("__recovery write DIR") appends o->bytes of log
 *               with sync none, reports how many records were
 *               acknowledged, and keeps appending until the parent kills
 *               it with SIGKILL, so the kill lands in the middle of an
 *               append and the log has a torn tail.  Unless
 *               --segment-bytes is given, the segments are made large
 *               enough (2 x o->bytes) that the whole log is in the
 *               active segment: the worst case for recovery.  The page
 *               cache is left as the kill leaves it (dirty).
 *
 * The measuring child times, in ms: mqlog_open + mqlog_topic_open ("open";
 * O(1) by design), then opening a reader on partition 0 and reading its
 * first record ("first read": the first use of the partition in a new
 * epoch runs its recovery), then seeking to the last record and reading it
 * ("last read").  After a kill it checks that every acknowledged record is
 * still there.
 */
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* What the measuring child reports. */
struct open_res {
	int32_t rc; /* 0, or failed (err says why) */
	char err[480];
	double open_ms;	     /* mqlog_open + mqlog_topic_open */
	double first_ms;     /* reader open + first record */
	double last_ms;	     /* seek to the last record + read it */
	uint64_t end_offset; /* the partition's end after recovery */
	uint64_t segments;   /* its segment files */
	uint64_t bytes;	     /* its bytes */
};

/* What the writing child reports once o->bytes are acknowledged. */
struct write_res {
	int32_t rc;
	char err[480];
	uint64_t acked; /* records acknowledged (the end offset) */
	uint64_t bytes; /* value bytes acknowledged */
};

static double ms_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e6;
}

/* ------------------------------------------------------------------------ */
/* Children                                                                 */
/* ------------------------------------------------------------------------ */

static int child_open(const char *dir)
{
	struct open_res res;
	mqlog_options opts;
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	mqlog_reader *r = NULL;
	mqlog_record rec;
	mqlog_partition_info info;
	uint64_t t0, end;
	int rc;

	memset(&res, 0, sizeof res);
	mqlog_options_init(&opts);
	opts.flags &= ~MQLOG_OPEN_CREATE;

	t0 = now_ns();
	rc = mqlog_open(dir, &opts, &db);
	if (!rc)
		rc = mqlog_topic_open(db, BENCH_TOPIC, &t);
	res.open_ms = ms_since(t0);
	if (rc)
		goto fail;

	t0 = now_ns();
	rc = mqlog_reader_open(t, 0, &r);
	if (!rc)
		rc = mqlog_reader_next(r, &rec);
	res.first_ms = ms_since(t0);
	if (rc < 0)
		goto fail;
	if (rc == 0) {
		rc = MQLOG_ERANGE;
		snprintf(res.err, sizeof res.err, "the partition is empty");
		goto out;
	}

	t0 = now_ns();
	rc = mqlog_reader_seek(r, MQLOG_OFFSET_LATEST);
	end = mqlog_reader_position(r);
	if (!rc)
		rc = mqlog_reader_seek(r, end - 1);
	if (!rc)
		rc = mqlog_reader_next(r, &rec);
	res.last_ms = ms_since(t0);
	if (rc < 0)
		goto fail;
	rc = mqlog_partition_stat(t, 0, &info);
	if (rc)
		goto fail;
	res.end_offset = info.end_offset;
	res.segments = info.segments;
	res.bytes = info.bytes;
	rc = 0;
	goto out;
fail:
	snprintf(res.err, sizeof res.err, "%s (%s)", mqlog_errmsg(NULL),
		 mqlog_strerror(rc));
out:
	res.rc = rc;
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
	return write_full(3, &res, sizeof res) == 0 && !rc ? 0 : 1;
}

static int child_write(const char *dir, const struct bench_opts *o)
{
	struct write_res res;
	mqlog_options opts;
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	unsigned char *payload = NULL;
	mqlog_msg *msgs = NULL;
	uint64_t k = o->batch, base = 0, written = 0;
	bool reported = false;
	int rc;

	memset(&res, 0, sizeof res);
	mqlog_options_init(&opts);
	rc = mqlog_open(dir, &opts, &db);
	if (!rc)
		rc = mqlog_topic_open(db, BENCH_TOPIC, &t);
	if (rc)
		goto fail;
	payload = malloc(o->size ? (size_t)o->size : 1);
	msgs = calloc((size_t)k, sizeof *msgs);
	if (!payload || !msgs) {
		rc = MQLOG_ENOMEM;
		goto fail;
	}
	fill_payload(payload, (size_t)o->size, 1);
	for (uint64_t i = 0; i < k; i++) {
		msgs[i].value.data = payload;
		msgs[i].value.len = (size_t)o->size;
		msgs[i].timestamp = MQLOG_TIMESTAMP_NOW;
	}
	/* Until the parent kills us: o->bytes, the report, then more (so
	 * that the kill lands inside an append), up to a bound. */
	while (written < o->bytes + (64u << 20) + k * o->size) {
		rc = mqlog_append(t, 0, msgs, (size_t)k, MQLOG_SYNC_DEFAULT,
				  &base);
		if (rc)
			goto fail;
		written += k * o->size;
		if (!reported && written >= o->bytes) {
			res.acked = base + k;
			res.bytes = written;
			if (write_full(3, &res, sizeof res) != 0)
				return 1;
			reported = true;
		}
	}
	for (;;)
		pause();
fail:
	res.rc = rc;
	snprintf(res.err, sizeof res.err, "%s (%s)", mqlog_errmsg(NULL),
		 mqlog_strerror(rc));
	if (!reported)
		(void)write_full(3, &res, sizeof res);
	free(msgs);
	free(payload);
	mqlog_topic_close(t);
	mqlog_close(db);
	return 1;
}

int recovery_child_main(int argc, char **argv)
{
	struct bench_opts o;

	/* __recovery open|write DIR OPTIONS... */
	if (argc < 4)
		return 2;
	memset(&o, 0, sizeof o);
	o.mode = MODE_RECOVERY;
	o.size = 1000;
	o.batch = 1000;
	parse_options(argc, argv, 4, &o, false);
	if (!strcmp(argv[2], "open"))
		return child_open(argv[3]);
	if (!strcmp(argv[2], "write"))
		return child_write(argv[3], &o);
	return 2;
}

/* ------------------------------------------------------------------------ */
/* Parent                                                                   */
/* ------------------------------------------------------------------------ */

/* Start "__recovery WHAT DIR OPTIONS"; returns the pid and its pipe. */
static pid_t spawn(const struct bench_opts *o, const char *what,
		   const char *dir, int *fd)
{
	struct argvb b = { .used = 0, .argc = 0 };

	argvb_add(&b, "mqlog-bench");
	argvb_add(&b, "__recovery");
	argvb_add(&b, what);
	argvb_add(&b, dir);
	opts_to_argv(o, &b);
	return spawn_worker(b.argv, -1, fd);
}

/* Wait for a child's report, showing a progress line meanwhile. */
static void await(const struct bench_opts *o, int fd, const char *label)
{
	struct pollfd p = { fd, POLLIN, 0 };
	uint64_t t0 = now_ns();

	for (;;) {
		int n = poll(&p, 1, 200);

		if (n > 0 || (n < 0 && errno != EINTR))
			break;
		progress_show(o, "%s: %.1f s", label,
			      (double)(now_ns() - t0) / 1e9);
	}
	progress_clear(o);
}

static void reap(pid_t pid, bool killed)
{
	int st;

	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!killed && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
		die("recovery: a child failed (status %d)", st);
}

static void measure_open(const struct bench_opts *o, const char *dir,
			 const char *label, bool clean, struct open_res *res)
{
	pid_t pid;
	int fd;

	/* After a clean close, start from a clean page cache; after a kill,
	 * leave it as the kill left it. */
	if (clean)
		settle();
	pid = spawn(o, "open", dir, &fd);
	await(o, fd, label);
	if (read_full(fd, res, sizeof *res) != sizeof *res)
		die("recovery: the measuring process died");
	close(fd);
	if (res->rc)
		die("recovery: %s: %s", dir, res->err);
	reap(pid, false);
}

static void add(struct results *r, const struct bench_opts *o,
		const char *label, double ms, const char *note)
{
	struct case_params par;
	struct bcase *c;
	struct sample s;

	memset(&par, 0, sizeof par);
	par.size = o->size;
	par.batch = o->batch;
	par.partitions = 1;
	c = results_case(r, "recovery", "mqlog", label, "", KIND_TIME, &par);
	memset(&s, 0, sizeof s);
	s.ms = ms;
	snprintf(c->note, sizeof c->note, "%s", note);
	case_add(c, &s, NULL);
}

/* A partition of o->segments one-batch segments, closed cleanly. */
static void build_segments(const struct bench_opts *o, const char *dir)
{
	mqlog_options opts;
	mqlog_topic_config cfg;
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	unsigned char payload[2500];
	mqlog_msg msg;
	uint64_t t0 = now_ns(), last = 0;
	int rc;

	rmtree(dir);
	mqlog_options_init(&opts);
	rc = mqlog_open(dir, &opts, &db);
	if (rc)
		die_mqlog(dir, rc);
	mqlog_topic_config_init(&cfg);
	cfg.segment_bytes = 4096;
	rc = mqlog_topic_create(db, BENCH_TOPIC, &cfg);
	if (!rc)
		rc = mqlog_topic_open(db, BENCH_TOPIC, &t);
	if (rc)
		die_mqlog("create topic", rc);
	/* 2.5 KB batches: two never fit in 4 KiB, so every append after
	 * the first rolls to a new segment. */
	fill_payload(payload, sizeof payload, 3);
	memset(&msg, 0, sizeof msg);
	msg.value.data = payload;
	msg.value.len = sizeof payload;
	msg.timestamp = MQLOG_TIMESTAMP_NOW;
	for (uint64_t i = 0; i < o->segments; i++) {
		rc = mqlog_append(t, 0, &msg, 1, MQLOG_SYNC_DEFAULT, NULL);
		if (rc)
			die_mqlog("append", rc);
		if (o->progress && now_ns() - last > 200000000u) {
			last = now_ns();
			progress_show(o,
				      "recovery: writing %" PRIu64
				      " segments: %" PRIu64 ", %.1f s",
				      o->segments, i,
				      (double)(last - t0) / 1e9);
		}
	}
	progress_clear(o);
	mqlog_topic_close(t);
	mqlog_close(db);
}

static void crash(const struct bench_opts *o, const char *dir,
		  struct write_res *w)
{
	mqlog_options opts;
	mqlog_topic_config cfg;
	mqlog *db = NULL;
	char label[96];
	pid_t pid;
	int fd, rc;

	rmtree(dir);
	settle();
	mqlog_options_init(&opts);
	rc = mqlog_open(dir, &opts, &db);
	if (rc)
		die_mqlog(dir, rc);
	mqlog_topic_config_init(&cfg);
	cfg.sync = MQLOG_SYNC_NONE;
	if (o->segment_bytes)
		cfg.segment_bytes = o->segment_bytes;
	else if (2 * o->bytes > cfg.segment_bytes)
		cfg.segment_bytes = 2 * o->bytes < (UINT64_C(1) << 40) ?
					    2 * o->bytes :
					    UINT64_C(1) << 40;
	if (o->size + 1024 > cfg.max_record_bytes)
		cfg.max_record_bytes = (uint32_t)(o->size + 1024);
	rc = mqlog_topic_create(db, BENCH_TOPIC, &cfg);
	if (rc)
		die_mqlog("create topic", rc);
	/* Nobody has the directory open when the writer dies. */
	mqlog_close(db);

	pid = spawn(o, "write", dir, &fd);
	snprintf(label, sizeof label,
		 "recovery: writing %" PRIu64 " bytes before kill -9",
		 o->bytes);
	await(o, fd, label);
	if (read_full(fd, w, sizeof *w) != sizeof *w) {
		kill(pid, SIGKILL);
		reap(pid, true);
		die("recovery: the writing process died");
	}
	kill(pid, SIGKILL);
	close(fd);
	reap(pid, true);
	if (w->rc)
		die("recovery: writer: %s", w->err);
}

void run_recovery(const struct bench_opts *o, struct results *r)
{
	char seg_dir[PATH_MAX], crash_dir[PATH_MAX], label[96], note[128];
	struct open_res res;
	struct write_res w;

	bench_subdir(o, "segments", seg_dir);
	bench_subdir(o, "crash", crash_dir);

	if (o->segments) {
		build_segments(o, seg_dir);
		for (unsigned rep = 0; rep < o->reps; rep++) {
			snprintf(label, sizeof label,
				 "recovery: run %u/%u: open %" PRIu64
				 " segments",
				 rep + 1, o->reps, o->segments);
			measure_open(o, seg_dir, label, true, &res);
			snprintf(note, sizeof note,
				 "%" PRIu64 " segments, %" PRIu64 " records",
				 res.segments, res.end_offset);
			snprintf(label, sizeof label,
				 "open, %" PRIu64 " segments", o->segments);
			add(r, o, label, res.open_ms, note);
			snprintf(label, sizeof label,
				 "first read, %" PRIu64 " segments",
				 o->segments);
			add(r, o, label, res.first_ms, note);
			snprintf(label, sizeof label,
				 "last read, %" PRIu64 " segments",
				 o->segments);
			add(r, o, label, res.last_ms, note);
		}
		if (bench_root_is_temp())
			rmtree(seg_dir);
	}

	if (o->bytes) {
		for (unsigned rep = 0; rep < o->reps; rep++) {
			crash(o, crash_dir, &w);
			snprintf(label, sizeof label,
				 "recovery: run %u/%u: reopen after kill -9",
				 rep + 1, o->reps);
			measure_open(o, crash_dir, label, false, &res);
			if (res.end_offset < w.acked)
				die("recovery: %" PRIu64
				    " records acknowledged, only %" PRIu64
				    " after recovery",
				    w.acked, res.end_offset);
			snprintf(note, sizeof note,
				 "%.1f MiB log, %" PRIu64 " acked, %" PRIu64
				 " recovered",
				 (double)res.bytes / 1048576.0, w.acked,
				 res.end_offset);
			add(r, o, "open after kill -9", res.open_ms, note);
			add(r, o, "first read after kill -9", res.first_ms,
			    note);
			add(r, o, "last read after kill -9", res.last_ms, note);
		}
		if (bench_root_is_temp())
			rmtree(crash_dir);
	}
}
