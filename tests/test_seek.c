/*
 * test_seek.c - readers on the edges of the log: seeking by time over many
 * small batches and past the end, crossing into segments another process
 * rolled, segments that are missing, removed, replaced or do not continue
 * the offsets, a partition directory that cannot be listed, a segment that
 * grows past the reader's mapping, and a writer that died holding the
 * append or the sync lock.
 *
 * Every failing call is checked for its code, for a message that names the
 * file or directory at fault, and for leaving the data directory as it was.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "helpers.h"

#include "engine.h"

static const char *dbdir(void)
{
	return fx_dir;
}

/* The last reader opened: a child forked while it is open exits with it
 * still reachable, which is no leak to memcheck. */
static mqlog_reader *volatile last_reader;

static mqlog_reader *open_reader(mqlog_topic *t, uint32_t part)
{
	mqlog_reader *r = NULL;
	int rc = mqlog_reader_open(t, part, &r);
	ck_assert_msg(rc == 0, "mqlog_reader_open = %d %s: %s", rc,
		      mqlog_errname(rc), mqlog_errmsg(NULL));
	ck_assert_ptr_nonnull(r);
	last_reader = r;
	return r;
}

/* Create topic "t" (one partition) with @segment_bytes and open it. */
static mqlog_topic *make_topic(mqlog *db, uint64_t segment_bytes)
{
	mqlog_topic_config c = h_cfg(1, segment_bytes, MQLOG_SYNC_NONE);
	h_create(db, "t", &c);
	return h_topic(db, "t");
}

/*
 * Append @n one-record batches to partition 0: the record at offset o has
 * the value "v<o>" followed by @pad dots and the timestamp 1000 + 10 * o.
 */
static void fill(mqlog_topic *t, unsigned n, size_t pad)
{
	char val[1100];
	uint64_t off = h_info(t, 0).end_offset;
	ck_assert_uint_lt(pad, 1000);
	for (unsigned i = 0; i < n; i++, off++) {
		int len = snprintf(val, 32, "v%" PRIu64, off);
		const char *vp = val;
		memset(val + len, '.', pad);
		val[(size_t)len + pad] = '\0';
		ck_assert_uint_eq(h_append_strs(t, 0, &vp, 1,
						1000 + 10 * (int64_t)off,
						MQLOG_SYNC_NONE),
				  off);
	}
}

/* The record @rec is the one fill() wrote at offset @off. */
static void check_rec(const mqlog_record *rec, uint64_t off)
{
	char want[32];
	int len = snprintf(want, sizeof want, "v%" PRIu64, off);
	ck_assert_uint_eq(rec->offset, off);
	ck_assert_int_eq(rec->timestamp, 1000 + 10 * (int64_t)off);
	ck_assert_uint_ge(rec->value.len, (size_t)len);
	ck_assert_msg(memcmp(rec->value.data, want, (size_t)len) == 0,
		      "record %" PRIu64 " holds %.*s", off, len,
		      (const char *)rec->value.data);
}

/* Read with @r up to the log end or an error, checking each record against
 * fill(); returns the final rc and leaves *next at the next offset. */
static int read_checked(mqlog_reader *r, uint64_t *next)
{
	mqlog_record rec;
	int rc;
	while ((rc = mqlog_reader_next(r, &rec)) == 1) {
		check_rec(&rec, *next);
		(*next)++;
	}
	return rc;
}

/* Segment bases of partition 0 of "t". */
static size_t segs(uint64_t *bases, size_t max)
{
	return h_seg_list(dbdir(), "t", 0, bases, max);
}

static int wait_child(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

/* In a child process: open the directory anew and fill() @n records. */
static void child_fill(unsigned n, size_t pad)
{
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	if (mqlog_open(dbdir(), NULL, &db) != 0 ||
	    mqlog_topic_open(db, "t", &t) != 0)
		_exit(10);
	fill(t, n, pad);
	mqlog_topic_close(t);
	mqlog_close(db);
	_exit(0);
}

static void run_child_fill(unsigned n, size_t pad)
{
	pid_t pid;
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child_fill(n, pad);
	ck_assert_int_eq(wait_child(pid), 0);
}

/* ------------------------------------------------------------------------ */
/* Seeking by time                                                          */
/* ------------------------------------------------------------------------ */

/* Between two sparse time index entries lie dozens of one-record batches:
 * seek_time hops those below the target on their headers and lands on the
 * first record at or after it, for every target; past the end it leaves
 * the reader at the log end. */
START_TEST(test_seek_time_over_small_batches)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	mqlog_reader *r;
	mqlog_record rec;

	c.index_interval_bytes = 8192; /* about one entry per 100 batches */
	h_create(db, "t", &c);
	t = h_topic(db, "t");
	fill(t, 400, 0);
	r = open_reader(t, 0);
	for (uint64_t want = 0; want < 400; want += 7) {
		/* Exactly a record's timestamp, and just after the one
		 * before it: both find that record. */
		int64_t ts = 1000 + 10 * (int64_t)want;
		ck_assert_int_eq(mqlog_reader_seek_time(r, ts), 0);
		ck_assert_uint_eq(mqlog_reader_position(r), want);
		ck_assert_int_eq(mqlog_reader_seek_time(r, ts - 9), 0);
		ck_assert_uint_eq(mqlog_reader_position(r), want);
		ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
		check_rec(&rec, want);
	}
	/* Before everything: the log start.  Past the newest: the end. */
	ck_assert_int_eq(mqlog_reader_seek_time(r, INT64_MIN), 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 0);
	ck_assert_int_eq(mqlog_reader_seek_time(r, 1000 + 10 * 400), 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 400);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 0);
	/* A record appended later is the next one read. */
	fill(t, 1, 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	check_rec(&rec, 400);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Segments removed or replaced under a reader                              */
/* ------------------------------------------------------------------------ */

/* A sealed segment unlinked under an open reader: crossing into it, seeking
 * into it and seeking by a time inside it are MQLOG_ERANGE naming the file,
 * the reader can still go back to records that exist, and a reader opened
 * when the first segment is gone fails the same way. */
START_TEST(test_segment_removed_under_reader)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t = make_topic(db, 4096);
	mqlog_reader *r, *r2 = NULL;
	uint64_t bases[16], after[16], next = 0, gone_end;
	size_t n, n2;
	int rc;

	fill(t, 120, 100);
	n = segs(bases, 16);
	ck_assert_uint_ge(n, 4);
	r = open_reader(t, 0);
	/* Remove the second segment. */
	ck_assert_int_eq(unlink(h_seg_path(dbdir(), "t", 0, bases[1])), 0);

	rc = read_checked(r, &next);
	ck_assert_int_eq(rc, MQLOG_ERANGE);
	ck_assert_uint_eq(next, bases[1]); /* every record before it */
	h_msg_has("segment removed");
	h_msg_has(fx_path("%020" PRIu64 ".seg", bases[1]));
	/* Asking again gives the same answer, not a bad record. */
	ck_assert_int_eq(read_checked(r, &next), MQLOG_ERANGE);
	ck_assert_uint_eq(mqlog_reader_position(r), bases[1]);

	/* Into it by offset and by time: the same error. */
	gone_end = bases[2];
	ck_assert_int_eq(mqlog_reader_seek(r, bases[1] + 1), MQLOG_ERANGE);
	h_msg_has("segment removed");
	ck_assert_int_eq(
		mqlog_reader_seek_time(r, 1000 + 10 * (int64_t)(gone_end - 1)),
		MQLOG_ERANGE);
	h_msg_has("segment removed");

	/* Records around it are still read. */
	ck_assert_int_eq(mqlog_reader_seek(r, gone_end), 0);
	next = gone_end;
	ck_assert_int_eq(read_checked(r, &next), 0);
	ck_assert_uint_eq(next, 120);
	ck_assert_int_eq(mqlog_reader_seek_time(r, 1000), 0);
	ck_assert_uint_eq(mqlog_reader_position(r), 0);
	mqlog_reader_close(r);

	/* The first segment gone: opening a reader (at the log start) fails,
	 * and no reader handle is handed out. */
	ck_assert_int_eq(unlink(h_seg_path(dbdir(), "t", 0, bases[0])), 0);
	rc = mqlog_reader_open(t, 0, &r2);
	ck_assert_int_eq(rc, MQLOG_ERANGE);
	ck_assert_ptr_null(r2);
	h_msg_has("segment removed");
	/* A partition that does not exist. */
	ck_assert_int_eq(mqlog_reader_open(t, 1, &r2), MQLOG_EINVAL);
	ck_assert_ptr_null(r2);
	h_msg_has("partition 1 out of range");

	/* None of these calls touched the directory: only the two files
	 * this test removed are missing. */
	n2 = segs(after, 16);
	ck_assert_uint_eq(n2, n - 2);
	ck_assert_int_eq(memcmp(after, bases + 2, n2 * sizeof *after), 0);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 120);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A sealed segment replaced by a directory of the same name: mapping it
 * fails with an error naming it, and the reader stays usable. */
START_TEST(test_segment_replaced_by_directory)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t = make_topic(db, 4096);
	mqlog_reader *r;
	mqlog_record rec;
	uint64_t bases[16], next;
	const char *p;
	size_t n;
	int rc;

	fill(t, 80, 100);
	n = segs(bases, 16);
	ck_assert_uint_ge(n, 3);
	r = open_reader(t, 0);
	ck_assert_int_eq(mqlog_reader_seek(r, MQLOG_OFFSET_LATEST), 0);
	p = h_seg_path(dbdir(), "t", 0, bases[1]);
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(mkdir(p, 0755), 0);

	rc = mqlog_reader_seek(r, bases[1]);
	ck_assert_int_lt(rc, 0);
	ck_assert_int_ne(rc, MQLOG_ERANGE);
	h_msg_has(fx_path("%020" PRIu64 ".seg", bases[1]));
	/* The failed seek left the reader where it was: at the end. */
	ck_assert_uint_eq(mqlog_reader_position(r), 80);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 0);

	ck_assert_int_eq(mqlog_reader_seek(r, bases[2]), 0);
	next = bases[2];
	ck_assert_int_eq(read_checked(r, &next), 0);
	ck_assert_uint_eq(next, 80);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A batch whose header is valid but whose base offset does not continue
 * the log (an earlier batch copied over it): the reader returns the records
 * before it, then MQLOG_ECORRUPT naming the file and byte, and stays in
 * front of it; seeking by time into it reports the same. */
START_TEST(test_batch_does_not_continue)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t = make_topic(db, 4096);
	mqlog_reader *r;
	struct h_batch b[64];
	uint64_t bases[16], next = 0;
	unsigned char *buf;
	const char *p;
	size_t n, len;
	int fd;

	fill(t, 60, 100);
	ck_assert_uint_ge(segs(bases, 16), 3);
	p = h_seg_path(dbdir(), "t", 0, bases[0]);
	n = h_walk(p, b, 64, NULL);
	ck_assert_uint_ge(n, 4);
	/* Batches 2 and 3 hold one record of the same size each. */
	ck_assert_uint_eq(b[2].len, b[3].len);
	buf = h_slurp(p, &len);
	fd = open(p, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, buf + b[2].pos, b[2].len, (off_t)b[3].pos),
			 (ssize_t)b[3].len);
	close(fd);
	free(buf);

	r = open_reader(t, 0);
	ck_assert_int_eq(read_checked(r, &next), MQLOG_ECORRUPT);
	ck_assert_uint_eq(next, b[3].base);
	h_msg_has("does not continue");
	h_msg_has(fx_path("%020" PRIu64 ".seg", bases[0]));
	h_msg_has(fx_path("byte %" PRIu64, b[3].pos));
	ck_assert_int_eq(read_checked(r, &next), MQLOG_ECORRUPT);
	ck_assert_uint_eq(mqlog_reader_position(r), b[3].base);

	ck_assert_int_eq(mqlog_reader_seek_time(r,
						1000 + 10 * (int64_t)b[3].base),
			 MQLOG_ECORRUPT);
	h_msg_has("does not continue");
	/* Past it everything reads. */
	ck_assert_int_eq(mqlog_reader_seek(r, bases[1]), 0);
	next = bases[1];
	ck_assert_int_eq(read_checked(r, &next), 0);
	ck_assert_uint_eq(next, 60);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A batch bigger than the roll size lands in the empty active segment that
 * a reader mapped at the roll size: the reader grows its mapping and
 * returns the record whole. */
START_TEST(test_active_segment_grows_past_mapping)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t = make_topic(db, 65536);
	mqlog_reader *r = open_reader(t, 0);
	mqlog_record rec;
	size_t big = 300000;
	char *val = malloc(big);
	mqlog_msg m;
	uint64_t base;

	ck_assert_ptr_nonnull(val);
	for (size_t i = 0; i < big; i++)
		val[i] = (char)('a' + i % 26);
	memset(&m, 0, sizeof m);
	m.value.data = val;
	m.value.len = big;
	m.timestamp = 5;
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 0);
	ck_assert_int_eq(mqlog_append(t, 0, &m, 1, MQLOG_SYNC_NONE, &base), 0);
	ck_assert_uint_eq(base, 0);
	ck_assert_uint_eq(h_info(t, 0).segments, 1);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 0);
	ck_assert_uint_eq(rec.value.len, big);
	ck_assert_int_eq(memcmp(rec.value.data, val, big), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 0);
	free(val);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Segments rolled by another process                                       */
/* ------------------------------------------------------------------------ */

/* Another process appends and rolls segments this process has never seen:
 * a reader at the end of the old active segment finds them on disk and
 * reads on in order. */
START_TEST(test_reader_crosses_into_segments_rolled_elsewhere)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t = make_topic(db, 4096);
	mqlog_reader *r;
	uint64_t next = 0, bases[32];

	fill(t, 50, 100);
	r = open_reader(t, 0);
	ck_assert_int_eq(read_checked(r, &next), 0);
	ck_assert_uint_eq(next, 50);
	run_child_fill(100, 100);
	ck_assert_uint_ge(segs(bases, 32), 5);
	ck_assert_int_eq(read_checked(r, &next), 0);
	ck_assert_uint_eq(next, 150);
	/* And this process appends after them. */
	fill(t, 5, 0);
	ck_assert_int_eq(read_checked(r, &next), 0);
	ck_assert_uint_eq(next, 155);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* The partition directory cannot be listed when the reader must look for
 * the segment another process rolled: the error names the directory, and
 * once the directory is back the reader goes on where it stopped. */
START_TEST(test_segment_directory_unreadable)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t = make_topic(db, 4096);
	mqlog_reader *r;
	const char *pdir;
	char moved[4096];
	uint64_t next = 0;
	int rc;

	fill(t, 50, 100);
	r = open_reader(t, 0);
	ck_assert_int_eq(read_checked(r, &next), 0);
	run_child_fill(60, 100);
	pdir = h_part_dir(dbdir(), "t", 0);
	snprintf(moved, sizeof moved, "%s.away", pdir);
	/* The reader keeps its mapping of the segment it is in, so it reads
	 * to that segment's end before it needs the listing. */
	ck_assert_int_eq(rename(pdir, moved), 0);
	rc = read_checked(r, &next);
	ck_assert_int_eq(rc, -ENOENT);
	h_msg_has(pdir);
	ck_assert_int_eq(mqlog_reader_position(r), next);
	ck_assert_int_eq(rename(moved, pdir), 0);
	ck_assert_int_eq(read_checked(r, &next), 0);
	ck_assert_uint_eq(next, 110);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* The segments another process rolled are missing: the log ends before
 * the published end, which is MQLOG_ECORRUPT naming the last file and the
 * offset, never a bad record; with the first segment gone too, a seek to
 * the log start is MQLOG_ERANGE. */
START_TEST(test_next_segment_missing)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t = make_topic(db, 4096);
	mqlog_reader *r;
	uint64_t bases[32], nb, next = 0, last;
	size_t n0, n1;

	fill(t, 50, 100);
	n0 = segs(bases, 32);
	last = bases[n0 - 1];
	r = open_reader(t, 0);
	ck_assert_int_eq(read_checked(r, &next), 0);
	run_child_fill(60, 100);
	n1 = segs(bases, 32);
	ck_assert_uint_gt(n1, n0);
	for (size_t i = n0; i < n1; i++)
		ck_assert_int_eq(unlink(h_seg_path(dbdir(), "t", 0, bases[i])),
				 0);
	/* The child first filled the segment that was active, then rolled:
	 * the reader gets every record of that segment, then the error. */
	nb = bases[n0];
	ck_assert_uint_gt(nb, next);
	ck_assert_int_eq(read_checked(r, &next), MQLOG_ECORRUPT);
	ck_assert_uint_eq(next, nb);
	h_msg_has("log ends");
	h_msg_has(fx_path("%020" PRIu64 ".seg", last));
	h_msg_has(fx_path("offset %" PRIu64, nb));
	ck_assert_int_eq(read_checked(r, &next), MQLOG_ECORRUPT);

	ck_assert_int_eq(unlink(h_seg_path(dbdir(), "t", 0, bases[0])), 0);
	ck_assert_int_eq(read_checked(r, &next), MQLOG_ECORRUPT);
	ck_assert_int_eq(mqlog_reader_seek(r, 0), MQLOG_ERANGE);
	h_msg_has("before the first segment");
	ck_assert_uint_eq(mqlog_reader_position(r), nb);
	ck_assert_uint_eq(segs(bases, 32), n0 - 1);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Writers that died holding a lock                                         */
/* ------------------------------------------------------------------------ */

/* In a child: open the directory anew, take partition 0's append lock
 * (@sync false) or sync lock (@sync true) and die holding it. */
static void child_die_locked(bool sync)
{
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	struct partition *p = NULL;
	if (mqlog_open(dbdir(), NULL, &db) != 0 ||
	    mqlog_topic_open(db, "t", &t) != 0 ||
	    topic_partition(t, 0, &p) != 0)
		_exit(10);
	if (sync ? pthread_mutex_lock(&p->st->sync_lock) != 0 :
		   partition_lock(p) != 0)
		_exit(11);
	_exit(0);
}

static void run_child_die_locked(bool sync)
{
	pid_t pid;
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child_die_locked(sync);
	ck_assert_int_eq(wait_child(pid), 0);
}

/* A process died holding the append lock: the next append repairs the
 * partition and succeeds, and every record before and after reads back. */
START_TEST(test_append_after_lock_owner_died)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t = make_topic(db, 4096);
	uint64_t next = 0;
	mqlog_reader *r;

	fill(t, 30, 100);
	run_child_die_locked(false);
	fill(t, 30, 100);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 60);
	ck_assert_int_eq(h_info(t, 0).failed, 0);
	r = open_reader(t, 0);
	ck_assert_int_eq(read_checked(r, &next), 0);
	ck_assert_uint_eq(next, 60);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A process died holding the sync lock: a sync-always append still syncs
 * and returns, and the records count as durable. */
START_TEST(test_sync_after_sync_owner_died)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t = make_topic(db, 1 << 20);
	const char *v = "after";
	struct mqlog_partition_info info;

	fill(t, 10, 0);
	run_child_die_locked(true);
	ck_assert_uint_eq(h_append_strs(t, 0, &v, 1, 1, MQLOG_SYNC_ALWAYS), 10);
	info = h_info(t, 0);
	ck_assert_uint_eq(info.end_offset, 11);
	ck_assert_uint_eq(info.durable_offset, 11);
	ck_assert_int_eq(info.failed, 0);
	ck_assert_int_eq(mqlog_sync(db), 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A partition directory that vanished                                      */
/* ------------------------------------------------------------------------ */

/* The directory of one partition removed while the data directory was
 * closed: the partition comes back empty at its log start, its stale index
 * entries do not leak into reads, and the other partition is untouched. */
START_TEST(test_partition_directory_recreated)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(2, 4096, MQLOG_SYNC_NONE);
	mqlog_topic *t;
	struct h_recs a = { 0 }, b = { 0 };
	const char *v1[3] = { "a", "b", "c" }, *v0 = "x";

	h_create(db, "t", &c);
	t = h_topic(db, "t");
	fill(t, 40, 100);
	h_append_strs(t, 1, v1, 3, 7, MQLOG_SYNC_NONE);
	mqlog_topic_close(t);
	mqlog_close(db);

	fx_rmtree(h_part_dir(dbdir(), "t", 0));
	db = h_open(dbdir());
	t = h_topic(db, "t");
	ck_assert_uint_eq(h_info(t, 0).end_offset, 0);
	ck_assert_int_eq(h_exists(h_part_dir(dbdir(), "t", 0)), 1);
	ck_assert_uint_eq(h_append_strs(t, 0, &v0, 1, 9, MQLOG_SYNC_NONE), 0);
	h_read_all(t, 0, &a);
	ck_assert_uint_eq(a.n, 1);
	ck_assert_str_eq(a.r[0].val, "x");
	h_read_all(t, 1, &b);
	ck_assert_uint_eq(b.n, 3);
	ck_assert_str_eq(b.r[2].val, "c");
	h_recs_free(&a);
	h_recs_free(&b);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Another process rolls several times while this one keeps the partition
 * open; this one's next append opens the new active segment.  Its list of
 * segments must not skip the ones in between: a reader would take the gap
 * for a hole in the log. */
START_TEST(test_rolls_by_another_process)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t = make_topic(db, 4096);
	mqlog_reader *r;
	uint64_t bases[64], next = 0;
	size_t n0, n1;

	fill(t, 3, 900);
	n0 = segs(bases, 64);
	run_child_fill(20, 900);
	n1 = segs(bases, 64);
	ck_assert_uint_ge(n1, n0 + 3);
	/* Appends that ask nothing else of the partition first (fill()
	 * reads its info, which lists the files again). */
	for (int i = 0; i < 2; i++) {
		char val[1000];
		mqlog_msg m = { .value = { val, 0 }, .timestamp = 1000 };
		uint64_t off = 0;
		m.value.len = (size_t)snprintf(val, sizeof val, "v%d", 23 + i);
		memset(val + m.value.len, '.', 900);
		m.value.len += 900;
		m.timestamp = 1000 + 10 * (23 + i);
		ck_assert_int_eq(
			mqlog_append(t, 0, &m, 1, MQLOG_SYNC_NONE, &off), 0);
		ck_assert_uint_eq(off, 23 + (uint64_t)i);
	}
	r = open_reader(t, 0);
	ck_assert_int_eq(read_checked(r, &next), 0);
	ck_assert_uint_eq(next, 25);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("seek");
	TCase *tc = tcase_create("seek");
	SRunner *sr;
	int nf;

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_test(tc, test_seek_time_over_small_batches);
	tcase_add_test(tc, test_segment_removed_under_reader);
	tcase_add_test(tc, test_segment_replaced_by_directory);
	tcase_add_test(tc, test_batch_does_not_continue);
	tcase_add_test(tc, test_active_segment_grows_past_mapping);
	tcase_add_test(tc, test_reader_crosses_into_segments_rolled_elsewhere);
	tcase_add_test(tc, test_segment_directory_unreadable);
	tcase_add_test(tc, test_next_segment_missing);
	tcase_add_test(tc, test_append_after_lock_owner_died);
	tcase_add_test(tc, test_sync_after_sync_owner_died);
	tcase_add_test(tc, test_partition_directory_recreated);
	tcase_add_test(tc, test_rolls_by_another_process);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
