/*
 * test_recovery.c - opening a directory after a crash: torn tails at every
 * byte, bit flips in the last batch, garbage after the log, corruption in
 * sealed segments (reported, never truncated, never returned), derived
 * indexes rebuilt identically, and recovery that is idempotent.
 */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>

#include "battery.h"
#include "engine.h"
#include "internal.h"

#define NB 7 /* batches in the torn-tail battery */

static const char *pristine(void)
{
	return fx_path("%s/pristine", fx_dir);
}

static const char *work(void)
{
	return fx_path("%s/work", fx_dir);
}

/* Replace the work directory with a fresh copy of the pristine one. */
static void restore(void)
{
	fx_rmtree(work());
	ck_assert_int_eq(h_copy_tree(pristine(), work()), 0);
}

/* The value of the record at @off: identifies the offset, with a length
 * that varies so batches have different sizes. */
static size_t value_for(uint64_t off, char *buf, size_t cap)
{
	int len = snprintf(buf, cap, "o%" PRIu64 ":", off);
	size_t pad = (size_t)((off * 37) % 90);
	ck_assert_uint_lt((size_t)len + pad, cap);
	memset(buf + len, 'a' + (int)(off % 26), pad);
	buf[(size_t)len + pad] = '\0';
	return (size_t)len + pad;
}

/* Append @nbatch batches of 1..4 records to partition 0; returns the
 * number of records. */
static uint64_t write_batches(mqlog_topic *t, int nbatch, uint64_t off)
{
	static char vals[4][128];
	for (int b = 0; b < nbatch; b++) {
		mqlog_msg m[4];
		size_t k = 1 + (size_t)((b * 5 + 1) % 4);
		uint64_t base;
		for (size_t j = 0; j < k; j++) {
			value_for(off + j, vals[j], sizeof vals[j]);
			m[j] = h_msg(vals[j], 1000 + (int64_t)(off + j));
		}
		ck_assert_int_eq(
			mqlog_append(t, 0, m, k, MQLOG_SYNC_DEFAULT, &base), 0);
		ck_assert_uint_eq(base, off);
		off += k;
	}
	return off;
}

/* Assert that partition 0 holds exactly the records [0, n) as written by
 * write_batches, and that the end is n. */
static void expect_log(mqlog_topic *t, uint64_t n)
{
	struct h_recs rs = { 0 };
	char want[128];
	ck_assert_uint_eq(h_info(t, 0).end_offset, n);
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, n);
	for (size_t i = 0; i < rs.n; i++) {
		size_t len = value_for(i, want, sizeof want);
		ck_assert_uint_eq(rs.r[i].off, i);
		ck_assert_uint_eq(rs.r[i].vlen, len);
		ck_assert_str_eq(rs.r[i].val, want);
		ck_assert_int_eq(rs.r[i].ts, 1000 + (int64_t)i);
	}
	h_recs_free(&rs);
}

/* Open @dir, check the log is [0, n), the segment was cut back to @size
 * bytes, appending continues at n, and verify is clean; close. */
static void check_recovered_at(const char *dir_arg, uint64_t n, uint64_t seg,
			       uint64_t size);

static void check_recovered(const char *dir_arg, uint64_t n, uint64_t size)
{
	check_recovered_at(dir_arg, n, 0, size);
}

/* The same, for a log whose last segment has base @seg. */
static void check_recovered_at(const char *dir_arg, uint64_t n, uint64_t seg,
			       uint64_t size)
{
	char dir[4096];
	mqlog *db;
	mqlog_topic *t;
	mqlog_verify_stats st;
	char v[128];
	uint64_t base = 0;
	mqlog_msg m;
	int rc;

	snprintf(dir, sizeof dir, "%s", dir_arg);
	db = h_open(dir);
	t = h_topic(db, "t");

	expect_log(t, n);
	ck_assert_uint_eq(h_size(h_seg_path(dir, "t", 0, seg)), size);
	value_for(n, v, sizeof v);
	m = h_msg(v, 1000 + (int64_t)n);
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, &base),
			 0);
	ck_assert_uint_eq(base, n);
	expect_log(t, n + 1);
	memset(&st, 0, sizeof st);
	rc = mqlog_verify(db, NULL, NULL, NULL, &st);
	ck_assert_msg(rc == 0, "verify after recovery: %d %s: %s", rc,
		      mqlog_errname(rc), mqlog_errmsg(db));
	ck_assert_uint_eq(st.records, n + 1);
	ck_assert_uint_eq(st.problems, 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}

/* Build the pristine directory: NB batches in one segment, closed cleanly.
 * Fills the batch layout of its segment. */
static void build_pristine(struct h_batch *b, uint64_t *file_size)
{
	mqlog *db = h_open(pristine());
	mqlog_topic *t;
	uint64_t end;
	h_create(db, "t", NULL);
	t = h_topic(db, "t");
	write_batches(t, NB, 0);
	mqlog_topic_close(t);
	mqlog_close(db);
	ck_assert_uint_eq(
		h_walk(h_seg_path(pristine(), "t", 0, 0), b, NB, &end), NB);
	*file_size = h_size(h_seg_path(pristine(), "t", 0, 0));
	ck_assert_uint_eq(end, *file_size);
}

/* ------------------------------------------------------------------------ */

/* For every length from the start of the second-to-last batch to the end of
 * the file, a segment cut there recovers to exactly the batches wholly
 * inside it, truncated to a batch boundary, with appends continuing. */
START_TEST(test_torn_tail_every_byte)
{
	struct h_batch b[NB];
	uint64_t size;
	build_pristine(b, &size);
	for (uint64_t L = b[NB - 2].pos; L <= size; L++) {
		uint64_t n = 0, boundary = 0;
		for (int i = 0; i < NB; i++)
			if (b[i].pos + b[i].len <= L) {
				n = b[i].base + b[i].count;
				boundary = b[i].pos + b[i].len;
			}
		restore();
		ck_assert_int_eq(fx_truncate(h_seg_path(work(), "t", 0, 0), L),
				 0);
		check_recovered(work(), n, boundary);
	}
}
END_TEST

/* One flipped bit anywhere in the last batch makes recovery drop exactly
 * that batch. */
START_TEST(test_bitflip_last_batch)
{
	struct h_batch b[NB];
	uint64_t size;
	build_pristine(b, &size);
	for (uint64_t pos = b[NB - 1].pos; pos < size; pos++) {
		restore();
		ck_assert_int_eq(fx_flip_bit(h_seg_path(work(), "t", 0, 0), pos,
					     (unsigned)(pos * 5 + 3) % 8),
				 0);
		check_recovered(work(), b[NB - 1].base, b[NB - 1].pos);
	}
}
END_TEST

/* Random bytes, zeros, a fake header and a duplicate of the last batch after
 * the log are all trimmed, and every record is still there. */
START_TEST(test_garbage_after_tail)
{
	struct h_batch b[NB];
	uint64_t size, seed = 42;
	unsigned char junk[4096];
	size_t dup_len;
	unsigned char *seg;
	build_pristine(b, &size);

	/* random */
	restore();
	for (size_t i = 0; i < 100; i++)
		junk[i] = (unsigned char)h_rand(&seed);
	ck_assert_int_eq(
		fx_append_bytes(h_seg_path(work(), "t", 0, 0), junk, 100), 0);
	check_recovered(work(), b[NB - 1].base + b[NB - 1].count, size);

	/* zeros */
	restore();
	memset(junk, 0, sizeof junk);
	ck_assert_int_eq(fx_append_bytes(h_seg_path(work(), "t", 0, 0), junk,
					 sizeof junk),
			 0);
	check_recovered(work(), b[NB - 1].base + b[NB - 1].count, size);

	/* a header that starts right (magic) and then is garbage */
	restore();
	for (size_t i = 0; i < 200; i++)
		junk[i] = (unsigned char)h_rand(&seed);
	{
		uint32_t magic = H_BATCH_MAGIC, len = 150;
		memcpy(junk, &magic, 4);
		memcpy(junk + 4, &len, 4);
	}
	ck_assert_int_eq(
		fx_append_bytes(h_seg_path(work(), "t", 0, 0), junk, 200), 0);
	check_recovered(work(), b[NB - 1].base + b[NB - 1].count, size);

	/* a byte-exact copy of the last batch: valid checksums, but its offsets
	 * repeat, so it is not part of the log */
	restore();
	seg = h_slurp(h_seg_path(work(), "t", 0, 0), &dup_len);
	ck_assert_int_eq(fx_append_bytes(h_seg_path(work(), "t", 0, 0),
					 seg + b[NB - 1].pos, b[NB - 1].len),
			 0);
	free(seg);
	check_recovered(work(), b[NB - 1].base + b[NB - 1].count, size);
}
END_TEST

/* A process that dies without closing leaves every appended record (sync
 * NONE: the page cache survives), and the lost in-memory index entries are
 * caught up so time and offset seeks stay exact. */
START_TEST(test_crash_without_close)
{
	pid_t pid;
	int status = 0;
	uint64_t n = 0;
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		mqlog *db = NULL;
		mqlog_topic *t = NULL;
		mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
		c.index_interval_bytes = 200;
		if (mqlog_open(work(), NULL, &db) != 0 ||
		    mqlog_topic_create(db, "t", &c) != 0 ||
		    mqlog_topic_open(db, "t", &t) != 0)
			_exit(3);
		write_batches(t, 150, 0);
		raise(SIGKILL);
		_exit(4);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	for (int b = 0; b < 150; b++)
		n += 1 + (uint64_t)((b * 5 + 1) % 4);
	{
		mqlog *db = h_open(work());
		mqlog_topic *t = h_topic(db, "t");
		mqlog_reader *r;
		mqlog_record rec;
		expect_log(t, n);
		ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
		for (uint64_t off = 0; off < n; off += 7) {
			ck_assert_int_eq(mqlog_reader_seek(r, off), 0);
			ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
			ck_assert_uint_eq(rec.offset, off);
			/* timestamps are 1000 + offset */
			ck_assert_int_eq(
				mqlog_reader_seek_time(r, 1000 + (int64_t)off),
				0);
			ck_assert_uint_eq(mqlog_reader_position(r), off);
		}
		mqlog_reader_close(r);
		ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
		ck_assert_uint_eq(h_append1(t, 0, "after crash"), n);
		mqlog_topic_close(t);
		mqlog_close(db);
	}
}
END_TEST

/* A writer killed with its last batch written whole but not yet published
 * (NB_PUB batches before it); leaves the log in pristine(). */
#define NB_PUB 12
static void crash_unpublished(struct h_batch *b)
{
	pid_t pid;
	int status = 0;
	uint64_t end;

	fx_rmtree(pristine());
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		mqlog *db = NULL;
		mqlog_topic *t = NULL;
		mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
		if (mqlog_open(pristine(), NULL, &db) != 0 ||
		    mqlog_topic_create(db, "t", &c) != 0 ||
		    mqlog_topic_open(db, "t", &t) != 0)
			_exit(3);
		io_crash_arm("append.after_write", NB_PUB + 1);
		write_batches(t, NB_PUB + 1, 0);
		_exit(4);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	ck_assert_uint_eq(h_walk(h_seg_path(pristine(), "t", 0, 0), b, 64,
				 &end),
			  NB_PUB + 1);
}

/*
 * After a kill -9 in this boot, recovery trusts what the dead writer had
 * published (whole writes in an intact page cache) and checks bodies only
 * past it: the unpublished batch is kept when whole and cut when damaged.
 * Damage below the published end cannot come from a crash; it is not cut
 * away with the records after it but reported by readers (never returned)
 * and by verify.  When the state comes from another boot (a power cut),
 * every body is checked and such damage is cut as a torn tail.
 */
START_TEST(test_crash_tail_trust)
{
	struct h_batch b[64];
	struct h_batch *u = &b[NB_PUB], *d = &b[5];
	mqlog *db;
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec;
	uint64_t n;
	int rc;

	crash_unpublished(b);
	n = u->base + u->count;

	/* whole: kept */
	restore();
	check_recovered(work(), n, u->pos + u->len);

	/* damaged past the published end: cut */
	restore();
	ck_assert_int_eq(fx_flip_bit(h_seg_path(work(), "t", 0, 0),
				     u->pos + H_BATCH_HDR + 2, 3),
			 0);
	check_recovered(work(), u->base, u->pos);

	/* damaged below it: kept in place, never returned, reported */
	restore();
	ck_assert_int_eq(fx_flip_bit(h_seg_path(work(), "t", 0, 0),
				     d->pos + H_BATCH_HDR + 2, 3),
			 0);
	db = h_open(work());
	t = h_topic(db, "t");
	ck_assert_uint_eq(h_info(t, 0).end_offset, n);
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	for (uint64_t o = 0; o < d->base; o++) {
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
		ck_assert_uint_eq(rec.offset, o);
	}
	rc = mqlog_reader_next(r, &rec);
	ck_assert_int_eq(rc, MQLOG_ECORRUPT);
	H_ASSERT_MSG(db);
	mqlog_reader_close(r);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL),
			 MQLOG_ECORRUPT);
	mqlog_topic_close(t);
	mqlog_close(db);

	/* the same damage under a state of another boot: cut as torn */
	restore();
	ck_assert_int_eq(fx_flip_bit(h_seg_path(work(), "t", 0, 0),
				     d->pos + H_BATCH_HDR + 2, 3),
			 0);
	ck_assert_int_eq(fx_flip_bit(fx_path("%s/topics/t/0/state", work()),
				     offsetof(struct pstate, boot_id), 0),
			 0);
	check_recovered(work(), d->base, d->pos);
}
END_TEST

/* When the last of several segments is torn down to a few bytes, the log
 * ends at that segment's base and appending continues there. */
START_TEST(test_torn_last_segment_of_many)
{
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	uint64_t bases[64], n, last;
	size_t nseg;
	mqlog *db = h_open(work());
	mqlog_topic *t;
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	n = write_batches(t, 80, 0);
	mqlog_topic_close(t);
	mqlog_close(db);
	nseg = h_seg_list(work(), "t", 0, bases, 64);
	ck_assert_uint_ge(nseg, 3);
	last = bases[nseg - 1];
	ck_assert_uint_lt(last, n);
	ck_assert_int_eq(fx_truncate(h_seg_path(work(), "t", 0, last), 10), 0);

	db = h_open(work());
	t = h_topic(db, "t");
	expect_log(t, last);
	{
		uint64_t sz = h_size(h_seg_path(work(), "t", 0, last));
		ck_assert_uint_eq(sz, 0);
	}
	/* sealed segments untouched */
	for (size_t i = 0; i + 1 < nseg; i++)
		ck_assert_uint_gt(h_size(h_seg_path(work(), "t", 0, bases[i])),
				  0);
	{
		char v[128];
		mqlog_msg m;
		uint64_t base;
		value_for(last, v, sizeof v);
		m = h_msg(v, 1000 + (int64_t)last);
		ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT,
					      &base),
				 0);
		ck_assert_uint_eq(base, last);
	}
	expect_log(t, last + 1);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Corruption in a sealed segment                                           */
/* ------------------------------------------------------------------------ */

struct problems {
	int count;	 /* problems reported */
	int matched;	 /* problems naming the damaged batch */
	uint64_t lo, hi; /* damaged batch byte range */
};

static void on_problem(void *arg, const char *topic, uint32_t partition,
		       const char *file, uint64_t position, const char *what)
{
	struct problems *p = arg;
	p->count++;
	if (topic && !strcmp(topic, "t") && partition == 0 && file &&
	    strstr(file, "00000000000000000000.seg") && position >= p->lo &&
	    position <= p->hi && what && what[0])
		p->matched++;
}

/* A flipped byte in the middle of a sealed segment: the directory opens,
 * records before it are read, the damaged batch is reported with
 * MQLOG_ECORRUPT naming the file and byte position and none of its records
 * are returned, verify reports it, and no file is truncated. */
START_TEST(test_sealed_corruption)
{
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	uint64_t bases[64], sizes[64], n, mid, bad_base = 0, bad_pos = 0;
	uint32_t bad_len = 0;
	struct h_batch b[64];
	size_t nseg, nb;
	mqlog *db = h_open(work());
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec;
	char pos_str[32];
	int rc;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	n = write_batches(t, 90, 0);
	mqlog_topic_close(t);
	mqlog_close(db);
	nseg = h_seg_list(work(), "t", 0, bases, 64);
	ck_assert_uint_ge(nseg, 3);
	ck_assert_uint_eq(bases[0], 0);

	/* Find the batch holding the middle byte of the first segment. */
	mid = h_size(h_seg_path(work(), "t", 0, 0)) / 2;
	nb = h_walk(h_seg_path(work(), "t", 0, 0), b, 64, NULL);
	ck_assert_uint_ge(nb, 3);
	for (size_t i = 0; i < nb; i++)
		if (mid >= b[i].pos && mid < b[i].pos + b[i].len) {
			bad_base = b[i].base;
			bad_pos = b[i].pos;
			bad_len = b[i].len;
		}
	ck_assert_uint_gt(bad_base, 0);
	ck_assert_int_eq(fx_flip_bit(h_seg_path(work(), "t", 0, 0), mid, 2), 0);
	for (size_t i = 0; i < nseg; i++)
		sizes[i] = h_size(h_seg_path(work(), "t", 0, bases[i]));
	snprintf(pos_str, sizeof pos_str, "%" PRIu64, bad_pos);

	db = h_open(work());
	t = h_topic(db, "t");
	ck_assert_uint_eq(h_info(t, 0).end_offset, n);

	/* next: everything before the damage, then ECORRUPT, repeatedly. */
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	for (uint64_t i = 0; i < bad_base; i++) {
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
		ck_assert_uint_eq(rec.offset, i);
	}
	for (int k = 0; k < 2; k++) {
		rc = mqlog_reader_next(r, &rec);
		ck_assert_int_eq(rc, MQLOG_ECORRUPT);
		ck_assert_uint_eq(mqlog_reader_position(r), bad_base);
		ck_assert_msg(h_contains(mqlog_errmsg(db),
					 "00000000000000000000.seg"),
			      "message does not name the segment: %s",
			      mqlog_errmsg(db));
		ck_assert_msg(h_contains(mqlog_errmsg(db), pos_str),
			      "message does not name byte %s: %s", pos_str,
			      mqlog_errmsg(db));
	}

	/* read: the records before come with 0, the error on the next call. */
	{
		static mqlog_record recs[1000];
		size_t got = 0, nn = 0;
		ck_assert_int_eq(mqlog_reader_seek(r, 0), 0);
		for (;;) {
			rc = mqlog_reader_read(r, recs, 1000, &nn);
			if (rc != 0)
				break;
			ck_assert_uint_gt(nn, 0);
			for (size_t i = 0; i < nn; i++)
				ck_assert_uint_eq(recs[i].offset, got + i);
			got += nn;
			ck_assert_uint_le(got, bad_base);
		}
		ck_assert_int_eq(rc, MQLOG_ECORRUPT);
		ck_assert_uint_eq(got, bad_base);
	}

	/* Seeking into the damaged batch never yields its records. */
	rc = mqlog_reader_seek(r, bad_base);
	if (rc == 0)
		ck_assert_int_eq(mqlog_reader_next(r, &rec), MQLOG_ECORRUPT);
	else
		ck_assert_int_eq(rc, MQLOG_ECORRUPT);

	/* Data in later segments stays reachable. */
	ck_assert_int_eq(mqlog_reader_seek(r, bases[1]), 0);
	for (uint64_t i = bases[1]; i < n; i++) {
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
		ck_assert_uint_eq(rec.offset, i);
	}
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 0);
	mqlog_reader_close(r);

	/* verify and recover report it; nothing is truncated. */
	{
		struct problems p = { 0, 0, bad_pos, bad_pos + bad_len };
		mqlog_verify_stats st;
		memset(&st, 0, sizeof st);
		rc = mqlog_verify(db, NULL, on_problem, &p, &st);
		ck_assert_int_eq(rc, MQLOG_ECORRUPT);
		ck_assert_int_ge(p.count, 1);
		ck_assert_int_ge(p.matched, 1);
		ck_assert_uint_ge(st.problems, 1);
	}
	mqlog_topic_close(t);
	rc = mqlog_recover(db, "t", NULL);
	ck_assert_int_eq(rc, MQLOG_ECORRUPT);
	for (size_t i = 0; i < nseg; i++)
		ck_assert_uint_eq(h_size(h_seg_path(work(), "t", 0, bases[i])),
				  sizes[i]);

	/* The partition still takes appends (at its true end). */
	t = h_topic(db, "t");
	ck_assert_uint_eq(h_append1(t, 0, "after"), n);
	mqlog_topic_close(t);
	mqlog_close(db);

	/* Reopening changes nothing either. */
	db = h_open(work());
	t = h_topic(db, "t");
	ck_assert_uint_eq(h_info(t, 0).end_offset, n + 1);
	for (size_t i = 0; i + 1 < nseg; i++)
		ck_assert_uint_eq(h_size(h_seg_path(work(), "t", 0, bases[i])),
				  sizes[i]);
	{
		struct h_recs rs = { 0 };
		rc = h_read_from(t, 0, 0, &rs);
		ck_assert_int_eq(rc, MQLOG_ECORRUPT);
		ck_assert_uint_eq(rs.n, bad_base);
		h_recs_free(&rs);
	}
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Derived indexes                                                          */
/* ------------------------------------------------------------------------ */

#define IX_N 400

/* Record the answers of offset and time seeks for many targets. */
static void lookups(mqlog_topic *t, const int64_t *ts, uint64_t *out)
{
	mqlog_reader *r;
	mqlog_record rec;
	size_t k = 0;
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	for (uint64_t off = 0; off < IX_N; off++) {
		ck_assert_int_eq(mqlog_reader_seek(r, off), 0);
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
		ck_assert_uint_eq(rec.offset, off);
		ck_assert_int_eq(rec.timestamp, ts[off]);
		out[k++] = rec.offset;
	}
	for (int64_t T = 9900; T <= 15100; T += 13) {
		uint64_t want = IX_N;
		for (uint64_t i = 0; i < IX_N; i++)
			if (ts[i] >= T) {
				want = i;
				break;
			}
		ck_assert_int_eq(mqlog_reader_seek_time(r, T), 0);
		ck_assert_uint_eq(mqlog_reader_position(r), want);
		out[k++] = mqlog_reader_position(r);
	}
	mqlog_reader_close(r);
}

/* mqlog_recover rebuilds the derived indexes from the segments, and every
 * offset and time lookup answers exactly as before. */
START_TEST(test_recover_rebuilds_index)
{
	static int64_t ts[IX_N];
	static uint64_t before[IX_N + 1000], after[IX_N + 1000];
	mqlog_topic_config c = h_cfg(2, 4096, MQLOG_SYNC_NONE);
	mqlog_recover_stats st;
	uint64_t seed = 7;
	mqlog *db = h_open(work());
	mqlog_topic *t;
	char v[64];

	c.index_interval_bytes = 200;
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	for (size_t i = 0; i < IX_N; i++) {
		mqlog_msg m;
		ts[i] = 10000 + (int64_t)(h_rand(&seed) % 5000);
		snprintf(v, sizeof v, "record %zu ......................", i);
		m = h_msg(v, ts[i]);
		ck_assert_int_eq(
			mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL), 0);
		ck_assert_int_eq(
			mqlog_append(t, 1, &m, 1, MQLOG_SYNC_DEFAULT, NULL), 0);
	}
	ck_assert_uint_ge(h_info(t, 0).segments, 3);
	lookups(t, ts, before);
	mqlog_topic_close(t);

	memset(&st, 0, sizeof st);
	ck_assert_int_eq(mqlog_recover(db, "t", &st), 0);
	ck_assert_uint_eq(st.partitions, 2);
	ck_assert_uint_eq(st.truncated_bytes, 0);
	ck_assert_uint_gt(st.index_entries, 0);
	t = h_topic(db, "t");
	lookups(t, ts, after);
	ck_assert(memcmp(before, after, sizeof before) == 0);
	mqlog_topic_close(t);

	memset(&st, 0, sizeof st);
	ck_assert_int_eq(mqlog_recover(db, NULL, &st), 0);
	ck_assert_uint_eq(st.partitions, 2);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);

	db = h_open(work());
	t = h_topic(db, "t");
	memset(after, 0, sizeof after);
	lookups(t, ts, after);
	ck_assert(memcmp(before, after, sizeof before) == 0);
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_recover(db, "nope", NULL), MQLOG_ENOENT);
	mqlog_close(db);
}
END_TEST

/* Snapshot of every segment file's bytes. */
struct snap {
	size_t n;		 /* segments */
	uint64_t bases[64];	 /* their bases */
	unsigned char *data[64]; /* their bytes */
	size_t len[64];		 /* their sizes */
};

static void take_snap(struct snap *s)
{
	s->n = h_seg_list(work(), "t", 0, s->bases, 64);
	ck_assert_uint_le(s->n, 64);
	for (size_t i = 0; i < s->n; i++)
		s->data[i] = h_slurp(h_seg_path(work(), "t", 0, s->bases[i]),
				     &s->len[i]);
}

static void free_snap(struct snap *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->data[i]);
	s->n = 0;
}

/* Opening a recovered directory again changes nothing: same segments, same
 * bytes, same records. */
START_TEST(test_recovery_idempotent)
{
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	unsigned char junk[300];
	uint64_t seed = 99, n, bases[64];
	size_t nseg;
	struct snap a, b;
	mqlog *db = h_open(work());
	mqlog_topic *t;

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	n = write_batches(t, 40, 0);
	mqlog_topic_close(t);
	mqlog_close(db);
	nseg = h_seg_list(work(), "t", 0, bases, 64);
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)h_rand(&seed);
	ck_assert_int_eq(
		fx_append_bytes(h_seg_path(work(), "t", 0, bases[nseg - 1]),
				junk, sizeof junk),
		0);

	for (int round = 0; round < 3; round++) {
		db = h_open(work());
		t = h_topic(db, "t");
		expect_log(t, n);
		mqlog_topic_close(t);
		mqlog_close(db);
		if (round == 0) {
			take_snap(&a);
			continue;
		}
		take_snap(&b);
		ck_assert_uint_eq(a.n, b.n);
		for (size_t i = 0; i < a.n; i++) {
			ck_assert_uint_eq(a.bases[i], b.bases[i]);
			ck_assert_uint_eq(a.len[i], b.len[i]);
			ck_assert(memcmp(a.data[i], b.data[i], a.len[i]) == 0);
		}
		free_snap(&b);
	}
	free_snap(&a);
	db = h_open(work());
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The last two batches across a roll, with a dense index                   */
/* ------------------------------------------------------------------------ */

/*
 * Build a log whose last batch is alone in a new segment and whose
 * second-to-last batch ends the sealed one, with an index entry for every
 * batch (so that after a cut the index leads the log).  Returns the sealed
 * segment's base; fills the layout of both files.
 */
static uint64_t build_rolled(struct h_batch *sb, size_t *nsb, uint64_t *ssize,
			     uint64_t *abase, uint64_t *asize, uint64_t *n)
{
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	uint64_t bases[64], off = 0, end;
	size_t nseg;
	mqlog *db = h_open(pristine());
	mqlog_topic *t;

	c.index_interval_bytes = 1;
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	/* Fill until the first roll has happened, then stop: the active
	 * segment holds exactly one batch. */
	for (;;) {
		off = write_batches(t, 1, off);
		if (h_info(t, 0).segments == 2)
			break;
	}
	mqlog_topic_close(t);
	mqlog_close(db);
	nseg = h_seg_list(pristine(), "t", 0, bases, 64);
	ck_assert_uint_eq(nseg, 2);
	*nsb = h_walk(h_seg_path(pristine(), "t", 0, bases[0]), sb, 64, &end);
	*ssize = h_size(h_seg_path(pristine(), "t", 0, bases[0]));
	ck_assert_uint_eq(end, *ssize);
	*abase = bases[1];
	*asize = h_size(h_seg_path(pristine(), "t", 0, bases[1]));
	*n = off;
	return bases[0];
}

/* The active segment cut at every byte of its one batch: the log ends at
 * the sealed segment's end, and the index entries that led the log are
 * gone (verify is clean). */
START_TEST(test_torn_tail_across_roll)
{
	struct h_batch sb[64];
	size_t nsb;
	uint64_t ssize, abase, asize, n;
	build_rolled(sb, &nsb, &ssize, &abase, &asize, &n);
	for (uint64_t L = 0; L <= asize; L++) {
		restore();
		ck_assert_int_eq(
			fx_truncate(h_seg_path(work(), "t", 0, abase), L), 0);
		if (L == asize)
			check_recovered_at(work(), n, abase, asize);
		else
			check_recovered_at(work(), abase, abase, 0);
	}
}
END_TEST

/* The sealed segment's last batch cut at every byte is damage to sealed
 * data: recovery neither truncates it further nor drops the newer
 * segment; readers get every record before the damage, then
 * MQLOG_ECORRUPT; a seek past it reads on; verify reports it. */
START_TEST(test_truncated_sealed_batch)
{
	struct h_batch sb[64];
	size_t nsb;
	uint64_t ssize, abase, asize, n, sbase;
	sbase = build_rolled(sb, &nsb, &ssize, &abase, &asize, &n);
	const struct h_batch *last = &sb[nsb - 1];
	for (uint64_t L = last->pos; L < ssize; L++) {
		struct h_recs rs = { 0 };
		mqlog *db;
		mqlog_topic *t;
		int rc;
		restore();
		ck_assert_int_eq(
			fx_truncate(h_seg_path(work(), "t", 0, sbase), L), 0);
		db = h_open(work());
		t = h_topic(db, "t");
		ck_assert_uint_eq(h_info(t, 0).end_offset, n);
		rc = h_read_from(t, 0, MQLOG_OFFSET_EARLIEST, &rs);
		ck_assert_int_eq(rc, MQLOG_ECORRUPT);
		ck_assert_uint_eq(rs.n, last->base);
		h_recs_free(&rs);
		rc = h_read_from(t, 0, abase, &rs);
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(rs.n, n - abase);
		h_recs_free(&rs);
		ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL),
				 MQLOG_ECORRUPT);
		mqlog_topic_close(t);
		mqlog_close(db);
		ck_assert_uint_eq(h_size(h_seg_path(work(), "t", 0, sbase)), L);
		ck_assert_uint_eq(h_size(h_seg_path(work(), "t", 0, abase)),
				  asize);
	}
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Regressions found by the reliability battery                             */
/* ------------------------------------------------------------------------ */

/* Append @appends generated batches to partition 0 of "t" (a topic with
 * max_messages 12 and 4 KiB segments, so retention deletes segments). */
static uint64_t fill_retained(const char *dir, int appends)
{
	mqlog_topic_config c = h_cfg(1, 4096, MQLOG_SYNC_NONE);
	mqlog *db = h_open(dir);
	mqlog_topic *t;
	uint64_t end = 0, base;
	c.max_messages = 12;
	c.index_interval_bytes = 500;
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	for (int i = 0; i < appends; i++) {
		size_t k = 1 + (size_t)(i % 3);
		ck_assert_int_eq(bt_append(t, 5, 0, end, k, 400,
					   MQLOG_SYNC_DEFAULT, &base),
				 0);
		end += k;
	}
	mqlog_topic_close(t);
	mqlog_close(db);
	return end;
}

/* When the newest segment is lost (its creation never reached the disk)
 * while the index kept its entries, recovery re-scans a segment whose
 * predecessors retention deleted.  Its running maximum timestamp then
 * differs from the one the appends used, and the rewritten time entries
 * used to sit beside the old ones (two entries for one batch): verify
 * reported them.  Found by test_powerloss. */
START_TEST(test_rescan_after_retention_rewrites_time_entries)
{
	uint64_t bases[64];
	size_t nseg;
	fill_retained(work(), 40);
	nseg = h_seg_list(work(), "t", 0, bases, 64);
	ck_assert_uint_ge(nseg, 2);
	ck_assert_uint_gt(bases[0], 0); /* retention deleted the first ones */
	ck_assert_int_eq(unlink(h_seg_path(work(), "t", 0, bases[nseg - 1])),
			 0);

	mqlog *db = h_open(work());
	mqlog_topic *t = h_topic(db, "t");
	mqlog_reader *r;
	struct bt_problems p = { 0, "" };
	int rc = mqlog_verify(db, NULL, bt_on_problem, &p, NULL);
	ck_assert_msg(rc == 0, "verify: %s", p.first);
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	for (uint64_t o = h_info(t, 0).start_offset; o < bases[nseg - 1]; o++) {
		ck_assert_int_eq(
			mqlog_reader_seek_time(r, 1000000 + (int64_t)o), 0);
		ck_assert_uint_eq(mqlog_reader_position(r), o);
	}
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A process killed after retention unlinked a segment but before it
 * trimmed that segment's index entries used to leave them for good: the
 * next recovery found no file left to delete, so it never trimmed, and
 * verify reported entries pointing at no batch.  Found by test_crash. */
START_TEST(test_crash_after_retention_unlink)
{
	pid_t pid;
	int status = 0;
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		io_crash_arm("retention.after_unlink", 1);
		fill_retained(work(), 1000);
		_exit(3); /* the crash point never fired */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	mqlog *db = h_open(work());
	struct bt_problems p = { 0, "" };
	int rc = mqlog_verify(db, NULL, bt_on_problem, &p, NULL);
	ck_assert_msg(rc == 0, "verify: %s", p.first);
	mqlog_close(db);
}
END_TEST

static Suite *recovery_suite(void)
{
	Suite *s = suite_create("recovery");
	TCase *tc = tcase_create("recovery");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_torn_tail_every_byte);
	tcase_add_test(tc, test_bitflip_last_batch);
	tcase_add_test(tc, test_garbage_after_tail);
	tcase_add_test(tc, test_crash_without_close);
	tcase_add_test(tc, test_crash_tail_trust);
	tcase_add_test(tc, test_torn_last_segment_of_many);
	tcase_add_test(tc, test_sealed_corruption);
	tcase_add_test(tc, test_recover_rebuilds_index);
	tcase_add_test(tc, test_recovery_idempotent);
	tcase_add_test(tc, test_torn_tail_across_roll);
	tcase_add_test(tc, test_truncated_sealed_batch);
	tcase_add_test(tc, test_rescan_after_retention_rewrites_time_entries);
	tcase_add_test(tc, test_crash_after_retention_unlink);
	suite_add_tcase(s, tc);
	return s;
}

H_MAIN(recovery_suite)
