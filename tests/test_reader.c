/*
 * test_reader.c - readers: seek by offset and by time (checked against a
 * brute-force scan, with sparse and dense indexes), batch reads, lifetime
 * of returned records, following the log end, and waiting for appends from
 * another thread and from another process.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "helpers.h"

static const char *dbdir(void)
{
	return fx_dir;
}

static mqlog_reader *open_reader(mqlog_topic *t, uint32_t part)
{
	mqlog_reader *r = NULL;
	int rc = mqlog_reader_open(t, part, &r);
	ck_assert_msg(rc == 0, "mqlog_reader_open = %d %s: %s", rc,
		      mqlog_errname(rc), mqlog_errmsg(NULL));
	ck_assert_ptr_nonnull(r);
	return r;
}

/* Append @n records "v<offset>" in batches of @per. */
static void fill(mqlog_topic *t, uint32_t part, unsigned n, unsigned per,
		 size_t pad)
{
	char vals[16][600];
	const char *vp[16];
	uint64_t off = h_info(t, part).end_offset;
	ck_assert_uint_le(per, 16);
	ck_assert_uint_lt(pad, 580);
	for (unsigned done = 0; done < n;) {
		unsigned k = n - done < per ? n - done : per;
		for (unsigned i = 0; i < k; i++) {
			int len = snprintf(vals[i], 32, "v%" PRIu64, off + i);
			memset(vals[i] + len, '.', pad);
			vals[i][(size_t)len + pad] = '\0';
			vp[i] = vals[i];
		}
		ck_assert_uint_eq(h_append_strs(t, part, vp, k, 1000,
						MQLOG_SYNC_DEFAULT),
				  off);
		off += k;
		done += k;
	}
}

static int val_is(const mqlog_record *rec, uint64_t off)
{
	char want[32];
	int len = snprintf(want, sizeof want, "v%" PRIu64, off);
	return rec->value.len >= (size_t)len &&
	       memcmp(rec->value.data, want, (size_t)len) == 0 &&
	       (rec->value.len == (size_t)len ||
		((const char *)rec->value.data)[len] == '.');
}

/* ------------------------------------------------------------------------ */

/* Seeking to an offset, EARLIEST and LATEST positions the reader there;
 * an offset past the end is MQLOG_ERANGE and leaves the position as it was. */
START_TEST(test_seek)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec;
	int rc;

	h_create(db, "t", NULL);
	t = h_topic(db, "t");
	fill(t, 0, 50, 5, 0);
	r = open_reader(t, 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 0);

	ck_assert_int_eq(mqlog_reader_seek(r, 17), 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 17);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 17);
	ck_assert(val_is(&rec, 17));
	ck_assert_uint_eq(mqlog_reader_position(r), 18);

	ck_assert_int_eq(mqlog_reader_seek(r, MQLOG_OFFSET_EARLIEST), 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 0);

	ck_assert_int_eq(mqlog_reader_seek(r, MQLOG_OFFSET_LATEST), 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 50);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 0);

	ck_assert_int_eq(mqlog_reader_seek(r, 50), 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 50);

	ck_assert_int_eq(mqlog_reader_seek(r, 23), 0);
	rc = mqlog_reader_seek(r, 51);
	ck_assert_int_eq(rc, MQLOG_ERANGE);
	H_ASSERT_MSG(db);
	ck_assert_uint_eq(mqlog_reader_position(r), 23);
	rc = mqlog_reader_seek(r, UINT64_MAX - 5);
	ck_assert_int_eq(rc, MQLOG_ERANGE);
	ck_assert_uint_eq(mqlog_reader_position(r), 23);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 23);
	ck_assert(val_is(&rec, 23));

	/* A second reader has its own position. */
	{
		mqlog_reader *r2 = open_reader(t, 0);
		ck_assert_int_eq(mqlog_reader_next(r2, &rec), 1);
		ck_assert_uint_eq(rec.offset, 0);
		mqlog_reader_close(r2);
	}
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 24);
	mqlog_reader_close(r);

	/* Readers on a bad partition are refused; *out is untouched. */
	{
		mqlog_reader *sentinel = (mqlog_reader *)&rc;
		mqlog_reader *out = sentinel;
		ck_assert_int_lt(mqlog_reader_open(t, 1, &out), 0);
		ck_assert_ptr_eq(out, sentinel);
	}
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Seeking to every offset of a multi-segment log (including offsets in the
 * middle of batches) reads exactly that record next. */
START_TEST(test_seek_every_offset)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec;

	c.index_interval_bytes = 1024;
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	fill(t, 0, 300, 4, 40);
	ck_assert_uint_ge(h_info(t, 0).segments, 3);
	r = open_reader(t, 0);
	for (uint64_t off = 300; off-- > 0;) {
		ck_assert_int_eq(mqlog_reader_seek(r, off), 0);
		ck_assert_uint_eq(mqlog_reader_position(r), off);
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
		ck_assert_uint_eq(rec.offset, off);
		ck_assert(val_is(&rec, off));
	}
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Time seeks                                                               */
/* ------------------------------------------------------------------------ */

#define TS_N 400

/* Append the same TS_N records with timestamps @ts to partition 0 of @t,
 * in batches of 1..4 records. */
static void fill_ts(mqlog_topic *t, const int64_t *ts)
{
	char vals[4][64];
	mqlog_msg m[4];
	size_t i = 0, b = 0;
	while (i < TS_N) {
		size_t k = 1 + b++ % 4;
		uint64_t base;
		if (k > TS_N - i)
			k = TS_N - i;
		for (size_t j = 0; j < k; j++) {
			snprintf(vals[j], sizeof vals[j],
				 "rec %zu with a little padding", i + j);
			m[j] = h_msg(vals[j], ts[i + j]);
		}
		ck_assert_int_eq(
			mqlog_append(t, 0, m, k, MQLOG_SYNC_DEFAULT, &base), 0);
		ck_assert_uint_eq(base, i);
		i += k;
	}
}

static uint64_t brute_time(const int64_t *ts, int64_t T)
{
	for (uint64_t i = 0; i < TS_N; i++)
		if (ts[i] >= T)
			return i;
	return TS_N;
}

/* Check seek_time for T across [lo, hi] against the brute force; store the
 * positions in @pos (for comparing topics). */
static void check_seek_time(mqlog_topic *t, const int64_t *ts, int64_t lo,
			    int64_t hi, int64_t step, uint64_t *pos)
{
	mqlog_reader *r = open_reader(t, 0);
	mqlog_record rec;
	size_t k = 0;
	for (int64_t T = lo; T <= hi; T += step, k++) {
		uint64_t want = brute_time(ts, T);
		int rc = mqlog_reader_seek_time(r, T);
		ck_assert_msg(rc == 0, "seek_time(%" PRId64 ") = %d %s", T, rc,
			      mqlog_errname(rc));
		ck_assert_msg(mqlog_reader_position(r) == want,
			      "seek_time(%" PRId64 "): position %" PRIu64
			      ", brute force %" PRIu64,
			      T, mqlog_reader_position(r), want);
		pos[k] = want;
		rc = mqlog_reader_next(r, &rec);
		if (want == TS_N) {
			ck_assert_int_eq(rc, 0);
		} else {
			ck_assert_int_eq(rc, 1);
			ck_assert_uint_eq(rec.offset, want);
			ck_assert_int_eq(rec.timestamp, ts[want]);
			ck_assert_int_ge(rec.timestamp, T);
		}
	}
	mqlog_reader_close(r);
}

static void run_time_seeks(int monotonic)
{
	static int64_t ts[TS_N];
	static uint64_t pos_small[2000], pos_large[2000];
	uint64_t seed = 0x1234567;
	int64_t lo = INT64_MAX, hi = INT64_MIN, step;
	const char *names[2] = { "small", "large" };
	uint32_t intervals[2] = { 200, 1u << 20 };
	mqlog *db = h_open(dbdir());

	for (size_t i = 0; i < TS_N; i++) {
		ts[i] = monotonic ? 100000 + 10 * (int64_t)i :
				    100000 + (int64_t)(h_rand(&seed) % 5000);
		/* Equal timestamps in runs, too. */
		if (!monotonic && i % 17 == 3)
			ts[i] = ts[i - 1];
		lo = ts[i] < lo ? ts[i] : lo;
		hi = ts[i] > hi ? ts[i] : hi;
	}
	step = (hi - lo) / 600 + 1;

	for (int k = 0; k < 2; k++) {
		mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
		mqlog_topic *t;
		c.index_interval_bytes = intervals[k];
		h_create(db, names[k], &c);
		t = h_topic(db, names[k]);
		fill_ts(t, ts);
		ck_assert_uint_ge(h_info(t, 0).segments, 3);
		check_seek_time(t, ts, lo - 50, hi + 50, step,
				k ? pos_large : pos_small);
		mqlog_topic_close(t);
	}
	ck_assert(memcmp(pos_small, pos_large, sizeof pos_small) == 0);

	/* T before everything is the start, after everything the end. */
	{
		mqlog_topic *t = h_topic(db, "small");
		mqlog_reader *r = open_reader(t, 0);
		ck_assert_int_eq(mqlog_reader_seek_time(r, INT64_MIN + 1), 0);
		ck_assert_uint_eq(mqlog_reader_position(r), 0);
		ck_assert_int_eq(mqlog_reader_seek_time(r, lo), 0);
		ck_assert_uint_eq(mqlog_reader_position(r), brute_time(ts, lo));
		ck_assert_int_eq(mqlog_reader_seek_time(r, hi + 1), 0);
		ck_assert_uint_eq(mqlog_reader_position(r), TS_N);
		ck_assert_int_eq(mqlog_reader_seek_time(r, INT64_MAX), 0);
		ck_assert_uint_eq(mqlog_reader_position(r), TS_N);
		mqlog_reader_close(r);
		mqlog_topic_close(t);
	}
	mqlog_close(db);

	/* The same answers after a reopen (indexes now read from LMDB). */
	db = h_open(dbdir());
	for (int k = 0; k < 2; k++) {
		mqlog_topic *t = h_topic(db, names[k]);
		static uint64_t again[2000];
		check_seek_time(t, ts, lo - 50, hi + 50, step, again);
		ck_assert(memcmp(again, pos_small, sizeof again) == 0);
		mqlog_topic_close(t);
	}
	mqlog_close(db);
}

/* With increasing timestamps, seek_time finds the first record at or after
 * T, identically with a dense and a sparse index. */
START_TEST(test_seek_time_monotonic)
{
	run_time_seeks(1);
}
END_TEST

/* With non-monotonic timestamps, seek_time finds the first offset whose
 * timestamp is >= T (as a brute-force scan does), with dense and sparse
 * indexes alike. */
START_TEST(test_seek_time_nonmonotonic)
{
	run_time_seeks(0);
}
END_TEST

/* seek_time on an empty partition lands on the (empty) end. */
START_TEST(test_seek_time_empty)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec;
	h_create(db, "t", NULL);
	t = h_topic(db, "t");
	r = open_reader(t, 0);
	ck_assert_int_eq(mqlog_reader_seek_time(r, 12345), 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 0);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

/* mqlog_reader_read returns records in order in groups of at most max, all
 * valid together, then 0 records at the end. */
START_TEST(test_read_batches)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record recs[7];
	uint64_t next = 0;
	size_t n = 99;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	fill(t, 0, 200, 3, 50);
	r = open_reader(t, 0);
	for (;;) {
		ck_assert_int_eq(mqlog_reader_read(r, recs, 7, &n), 0);
		ck_assert_uint_le(n, 7);
		if (n == 0)
			break;
		for (size_t i = 0; i < n; i++) {
			ck_assert_uint_eq(recs[i].offset, next + i);
			ck_assert(val_is(&recs[i], next + i));
			ck_assert_uint_eq(recs[i].partition, 0);
		}
		next += n;
		ck_assert_uint_eq(mqlog_reader_position(r), next);
	}
	ck_assert_uint_eq(next, 200);
	n = 99;
	ck_assert_int_eq(mqlog_reader_read(r, recs, 7, &n), 0);
	ck_assert_uint_eq(n, 0);

	/* max 1 behaves like next. */
	ck_assert_int_eq(mqlog_reader_seek(r, 150), 0);
	ck_assert_int_eq(mqlog_reader_read(r, recs, 1, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(recs[0].offset, 150);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Records handed out stay valid until the next call on the reader, even
 * when the log grows and rolls new segments in the meantime. */
START_TEST(test_record_lifetime)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec, recs[7];
	size_t n;
	uint64_t segs;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	fill(t, 0, 10, 1, 300);
	r = open_reader(t, 0);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 9);
	segs = h_info(t, 0).segments;
	fill(t, 0, 60, 2, 300);
	ck_assert_uint_gt(h_info(t, 0).segments, segs);
	ck_assert(val_is(&rec, 9));
	ck_assert_uint_eq(rec.value.len, 2 + 300);

	ck_assert_int_eq(mqlog_reader_read(r, recs, 7, &n), 0);
	ck_assert_uint_eq(n, 7);
	segs = h_info(t, 0).segments;
	fill(t, 0, 60, 2, 300);
	ck_assert_uint_gt(h_info(t, 0).segments, segs);
	for (size_t i = 0; i < n; i++)
		ck_assert(val_is(&recs[i], 10 + i));
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A reader at the end gets 0, then sees records appended later, also when
 * they land in a new segment. */
START_TEST(test_follow_end)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	mqlog_reader *r, *latest;
	mqlog_record rec;
	uint64_t next = 0;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	r = open_reader(t, 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 0);
	for (int round = 0; round < 30; round++) {
		fill(t, 0, 3, 3, 200);
		for (int i = 0; i < 3; i++) {
			ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
			ck_assert_uint_eq(rec.offset, next);
			ck_assert(val_is(&rec, next));
			next++;
		}
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 0);
		ck_assert_uint_eq(mqlog_reader_position(r), next);
	}
	ck_assert_uint_ge(h_info(t, 0).segments, 3);

	/* A reader at LATEST sees only what comes after. */
	latest = open_reader(t, 0);
	ck_assert_int_eq(mqlog_reader_seek(latest, MQLOG_OFFSET_LATEST), 0);
	ck_assert_int_eq(mqlog_reader_next(latest, &rec), 0);
	fill(t, 0, 1, 1, 0);
	ck_assert_int_eq(mqlog_reader_next(latest, &rec), 1);
	ck_assert_uint_eq(rec.offset, next);
	mqlog_reader_close(latest);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Waiting (timing-related: these measure elapsed time)                     */
/* ------------------------------------------------------------------------ */

/* With nothing to read, wait times out after about the timeout with
 * MQLOG_ETIMEDOUT; with data available it returns 0 at once. */
START_TEST(test_wait_timeout)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t;
	mqlog_reader *r;
	double t0, el;
	int rc;

	h_create(db, "t", NULL);
	t = h_topic(db, "t");
	r = open_reader(t, 0);
	t0 = h_mono_ms();
	rc = mqlog_reader_wait(r, 50);
	el = h_mono_ms() - t0;
	ck_assert_int_eq(rc, MQLOG_ETIMEDOUT);
	ck_assert_msg(el >= 45 && el < 1000, "waited %.1f ms for 50", el);

	t0 = h_mono_ms();
	ck_assert_int_eq(mqlog_reader_wait(r, 0), MQLOG_ETIMEDOUT);
	ck_assert_msg(h_mono_ms() - t0 < 500, "wait(0) blocked");

	h_append1(t, 0, "here");
	t0 = h_mono_ms();
	ck_assert_int_eq(mqlog_reader_wait(r, 5000), 0);
	ck_assert_int_eq(mqlog_reader_wait(r, 0), 0);
	ck_assert_msg(h_mono_ms() - t0 < 500, "wait with data blocked");

	/* Once read, it blocks again. */
	{
		mqlog_record rec;
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	}
	ck_assert_int_eq(mqlog_reader_wait(r, 20), MQLOG_ETIMEDOUT);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

struct delayed {
	mqlog_topic *t;	 /* topic to append to */
	unsigned ms;	 /* delay before appending */
	double appended; /* monotonic time of the append */
	int rc;		 /* append result */
};

static void *delayed_append(void *arg)
{
	struct delayed *d = arg;
	mqlog_msg m = h_msg("wake", MQLOG_TIMESTAMP_NOW);
	h_sleep_ms(d->ms);
	d->appended = h_mono_ms();
	d->rc = mqlog_append(d->t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL);
	return NULL;
}

/* A waiting reader is woken promptly by an append from another thread
 * (finite and infinite timeouts). */
START_TEST(test_wait_woken_by_thread)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec;

	h_create(db, "t", NULL);
	t = h_topic(db, "t");
	r = open_reader(t, 0);
	for (int round = 0; round < 2; round++) {
		struct delayed d = { t, 100, 0, -1 };
		pthread_t th;
		double woke, t0 = h_mono_ms();
		int rc;
		ck_assert_int_eq(pthread_create(&th, NULL, delayed_append, &d),
				 0);
		rc = mqlog_reader_wait(r, round == 0 ? 5000 : -1);
		woke = h_mono_ms();
		pthread_join(th, NULL);
		ck_assert_int_eq(d.rc, 0);
		ck_assert_int_eq(rc, 0);
		ck_assert_msg(woke - t0 >= 50, "returned before the append");
		ck_assert_msg(woke - d.appended < 1000,
			      "woken %.1f ms after the append",
			      woke - d.appended);
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
		ck_assert_uint_eq(rec.offset, (uint64_t)round);
	}
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* mqlog_options.wait_spin_us: a wait spins at most as long as its
 * timeout, a record appended while it spins ends the wait, and with 0 it
 * sleeps at once and is still woken. */
START_TEST(test_wait_spin)
{
	for (int round = 0; round < 2; round++) {
		mqlog_options o;
		mqlog *db;
		mqlog_topic *t;
		mqlog_reader *r;
		mqlog_record rec;
		double t0, el;

		mqlog_options_init(&o);
		ck_assert_uint_eq(o.wait_spin_us, 50);
		o.wait_spin_us = round == 0 ? 2000000 : 0;
		ck_assert_int_eq(mqlog_open(dbdir(), &o, &db), 0);
		if (round == 0)
			h_create(db, "t", NULL);
		t = h_topic(db, "t");
		r = open_reader(t, 0);
		ck_assert_int_eq(mqlog_reader_seek(r, (uint64_t)round), 0);
		t0 = h_mono_ms();
		ck_assert_int_eq(mqlog_reader_wait(r, 30), MQLOG_ETIMEDOUT);
		el = h_mono_ms() - t0;
		ck_assert_msg(el >= 25 && el < 1000, "waited %.1f ms for 30",
			      el);

		struct delayed d = { t, 50, 0, -1 };
		pthread_t th;
		ck_assert_int_eq(pthread_create(&th, NULL, delayed_append, &d),
				 0);
		t0 = h_mono_ms();
		ck_assert_int_eq(mqlog_reader_wait(r, 10000), 0);
		el = h_mono_ms() - t0;
		pthread_join(th, NULL);
		ck_assert_int_eq(d.rc, 0);
		ck_assert_msg(el >= 40 && el < 1500,
			      "woken after %.1f ms (append at 50)", el);
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
		ck_assert_uint_eq(rec.offset, (uint64_t)round);
		mqlog_reader_close(r);
		mqlog_topic_close(t);
		mqlog_close(db);
	}
}
END_TEST

struct child_report {
	int wait_rc;  /* mqlog_reader_wait result */
	int read_rc;  /* mqlog_reader_next result */
	int value_ok; /* record value was "cross" */
	double woke;  /* monotonic ms when wait returned */
};

static int read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	size_t got = 0;
	while (got < len) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t k;
		if (poll(&p, 1, timeout_ms) <= 0)
			return -1;
		k = read(fd, (char *)buf + got, len - got);
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

/* The child: opens the directory itself, waits at the log end, reports. */
static void waiting_child(int ready_fd, int report_fd)
{
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	mqlog_reader *r = NULL;
	mqlog_record rec;
	struct child_report rep;
	char c = 'r';

	/* Padding too: the whole struct goes through a pipe. */
	memset(&rep, 0, sizeof rep);
	rep.wait_rc = -1;
	rep.read_rc = -1;
	if (mqlog_open(dbdir(), NULL, &db) != 0 ||
	    mqlog_topic_open(db, "t", &t) != 0 ||
	    mqlog_reader_open(t, 0, &r) != 0 ||
	    mqlog_reader_seek(r, MQLOG_OFFSET_LATEST) != 0)
		_exit(3);
	if (write(ready_fd, &c, 1) != 1)
		_exit(4);
	rep.wait_rc = mqlog_reader_wait(r, 5000);
	rep.woke = h_mono_ms();
	rep.read_rc = mqlog_reader_next(r, &rec);
	rep.value_ok = rep.read_rc == 1 && rec.value.len == 5 &&
		       memcmp(rec.value.data, "cross", 5) == 0;
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
	if (write(report_fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
		_exit(5);
	_exit(0);
}

/* A reader in another process (which opened the directory itself after
 * fork) is woken by this process's append in well under a second. */
START_TEST(test_wait_woken_across_processes)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t;
	int ready[2], report[2], status = 0;
	pid_t pid;
	char c;
	double appended;
	struct child_report rep;
	mqlog_msg m = h_msg("cross", MQLOG_TIMESTAMP_NOW);

	h_create(db, "t", NULL);
	t = h_topic(db, "t");
	h_append1(t, 0, "old");
	mqlog_topic_close(t);
	mqlog_close(db);

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(report), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		close(report[0]);
		waiting_child(ready[1], report[1]);
	}
	close(ready[1]);
	close(report[1]);
	ck_assert_msg(read_full(ready[0], &c, 1, 10000) == 0,
		      "child did not get ready");

	db = h_open(dbdir());
	t = h_topic(db, "t");
	h_sleep_ms(100); /* let the child block in its wait */
	appended = h_mono_ms();
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL),
			 0);
	ck_assert_msg(read_full(report[0], &rep, sizeof rep, 10000) == 0,
		      "no report from the child");
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(rep.wait_rc, 0);
	ck_assert_int_eq(rep.read_rc, 1);
	ck_assert(rep.value_ok);
	ck_assert_msg(rep.woke - appended < 1000,
		      "child woke %.1f ms after the append",
		      rep.woke - appended);
	close(ready[0]);
	close(report[0]);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

static Suite *reader_suite(void)
{
	Suite *s = suite_create("reader");
	TCase *tc = tcase_create("reader");
	TCase *tw = tcase_create("wait");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_seek);
	tcase_add_test(tc, test_seek_every_offset);
	tcase_add_test(tc, test_seek_time_monotonic);
	tcase_add_test(tc, test_seek_time_nonmonotonic);
	tcase_add_test(tc, test_seek_time_empty);
	tcase_add_test(tc, test_read_batches);
	tcase_add_test(tc, test_record_lifetime);
	tcase_add_test(tc, test_follow_end);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tw, fx_setup, fx_teardown);
	tcase_set_timeout(tw, 30);
	tcase_add_test(tw, test_wait_timeout);
	tcase_add_test(tw, test_wait_woken_by_thread);
	tcase_add_test(tw, test_wait_spin);
	tcase_add_test(tw, test_wait_woken_across_processes);
	suite_add_tcase(s, tw);
	return s;
}

H_MAIN(reader_suite)
