/*
 * test_retention.c - record, byte and age limits; the full policies
 * (drop-oldest, reject, block); releasing records; crash-safe deletion;
 * the watermark callback.
 */
#include "helpers.h"

#include "engine.h"

#include <pthread.h>
#include <sys/wait.h>

#define TOPIC "q"

static mqlog *open_db(void)
{
	mqlog *db;
	ck_assert_int_eq(mqlog_open(fx_dir, NULL, &db), 0);
	return db;
}

static mqlog_topic *make_topic(mqlog *db, int64_t max_messages,
			       int64_t retention_bytes, int policy,
			       uint64_t segment_bytes)
{
	mqlog_topic_config c;
	mqlog_topic *t;

	mqlog_topic_config_init(&c);
	c.max_messages = max_messages;
	c.retention_bytes = retention_bytes;
	c.full_policy = policy;
	c.segment_bytes = segment_bytes;
	c.full_block_ms = 3000;
	ck_assert_int_eq(mqlog_topic_create(db, TOPIC, &c), 0);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	return t;
}

/* Append @n one-record batches "v<i>" numbered from @first. */
static int append_n(mqlog_topic *t, uint64_t first, int n)
{
	char v[32];
	for (int i = 0; i < n; i++) {
		snprintf(v, sizeof v, "v%llu", (unsigned long long)(first + i));
		mqlog_msg m = { .value = { v, strlen(v) },
				.timestamp = MQLOG_TIMESTAMP_NOW };
		int rc = mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL);
		if (rc)
			return rc;
	}
	return 0;
}

/* Read partition 0 from the earliest offset; checks values match offsets
 * and returns the count, the first offset in *first. */
static uint64_t read_all(mqlog_topic *t, uint64_t *first)
{
	mqlog_reader *r;
	mqlog_record rec;
	uint64_t n = 0;
	char want[32];
	int rc;

	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	while ((rc = mqlog_reader_next(r, &rec)) == 1) {
		if (n == 0 && first)
			*first = rec.offset;
		snprintf(want, sizeof want, "v%llu",
			 (unsigned long long)rec.offset);
		ck_assert_uint_eq(rec.value.len, strlen(want));
		ck_assert(memcmp(rec.value.data, want, rec.value.len) == 0);
		n++;
	}
	ck_assert_int_eq(rc, 0);
	mqlog_reader_close(r);
	return n;
}

static size_t count_segments(void)
{
	DIR *d = opendir(fx_path("%s/topics/%s/0", fx_dir, TOPIC));
	struct dirent *de;
	size_t n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		n += strstr(de->d_name, ".seg") != NULL;
	closedir(d);
	return n;
}

START_TEST(test_count_drop_oldest_exact)
{
	/* With a record limit of N and drop-oldest, exactly the newest N
	 * records remain readable, before and after a reopen, and segments
	 * wholly below the start are deleted. */
	mqlog *db = open_db();
	mqlog_topic *t = make_topic(db, 100, MQLOG_UNLIMITED,
				    MQLOG_FULL_DROP_OLDEST, 4096);
	uint64_t first = 0;

	ck_assert_int_eq(append_n(t, 0, 1000), 0);
	ck_assert_uint_eq(read_all(t, &first), 100);
	ck_assert_uint_eq(first, 900);
	mqlog_partition_info pi;
	ck_assert_int_eq(mqlog_partition_stat(t, 0, &pi), 0);
	ck_assert_uint_eq(pi.start_offset, 900);
	ck_assert_uint_eq(pi.end_offset, 1000);
	ck_assert(pi.usage > 0.99 && pi.usage < 1.01);
	/* ~30 bytes a record, 4 KiB segments: 100 records span at most a
	 * few segments, not the 8+ that 1000 records need.  The appender
	 * leaves the deletion to the background thread (one tick). */
	for (int i = 0; i < 200 && count_segments() > 3; i++)
		h_sleep_ms(10);
	ck_assert_uint_le(count_segments(), 3);
	mqlog_reader *r;
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	ck_assert_int_eq(mqlog_reader_seek(r, 899), MQLOG_ERANGE);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);

	db = open_db();
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	ck_assert_uint_eq(read_all(t, &first), 100);
	ck_assert_uint_eq(first, 900);
	ck_assert_int_eq(append_n(t, 1000, 5), 0);
	ck_assert_uint_eq(read_all(t, &first), 100);
	ck_assert_uint_eq(first, 905);
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);
}
END_TEST

START_TEST(test_count_reject)
{
	/* With reject, a full partition answers MQLOG_EFULL and writes
	 * nothing; releasing records makes room again. */
	mqlog *db = open_db();
	mqlog_topic *t =
		make_topic(db, 10, MQLOG_UNLIMITED, MQLOG_FULL_REJECT, 1 << 20);
	uint64_t size0, size1;
	const char *seg = fx_path("%s/topics/%s/0/%020d.seg", fx_dir, TOPIC, 0);

	ck_assert_int_eq(append_n(t, 0, 10), 0);
	ck_assert_int_eq(fx_file_size(seg, &size0), 0);
	ck_assert_int_eq(append_n(t, 10, 1), MQLOG_EFULL);
	ck_assert_ptr_nonnull(strstr(mqlog_errmsg(db), "max-messages"));
	ck_assert_int_eq(fx_file_size(seg, &size1), 0);
	ck_assert_uint_eq(size0, size1);
	/* A batch that can never fit is refused outright. */
	mqlog_msg m[11];
	for (int i = 0; i < 11; i++)
		m[i] = (mqlog_msg){ .value = { "x", 1 },
				    .timestamp = MQLOG_TIMESTAMP_NOW };
	ck_assert_int_eq(mqlog_append(t, 0, m, 11, MQLOG_SYNC_DEFAULT, NULL),
			 MQLOG_EFULL);

	ck_assert_int_eq(mqlog_partition_release(t, 0, 4), 0);
	ck_assert_int_eq(append_n(t, 10, 4), 0);
	ck_assert_int_eq(append_n(t, 14, 1), MQLOG_EFULL);
	uint64_t first;
	ck_assert_uint_eq(read_all(t, &first), 10);
	ck_assert_uint_eq(first, 4);
	ck_assert_int_eq(mqlog_partition_release(t, 0, 99), MQLOG_ERANGE);
	mqlog_topic_close(t);
	mqlog_close(db);

	/* Released records stay released after a reopen. */
	db = open_db();
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	ck_assert_uint_eq(read_all(t, &first), 10);
	ck_assert_uint_eq(first, 4);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

struct releaser {
	mqlog_topic *t; /* topic */
	unsigned ms;	/* delay before releasing */
};

static void *release_later(void *arg)
{
	struct releaser *r = arg;
	h_sleep_ms(r->ms);
	ck_assert_int_eq(mqlog_partition_release(r->t, 0, 5), 0);
	return NULL;
}

START_TEST(test_block_unblocks_on_release)
{
	/* With block, a producer on a full partition waits until a consumer
	 * releases records, then appends. */
	mqlog *db = open_db();
	mqlog_topic *t =
		make_topic(db, 5, MQLOG_UNLIMITED, MQLOG_FULL_BLOCK, 1 << 20);
	struct releaser rel = { t, 150 };
	pthread_t th;

	ck_assert_int_eq(append_n(t, 0, 5), 0);
	double t0 = h_mono_ms();
	ck_assert_int_eq(pthread_create(&th, NULL, release_later, &rel), 0);
	ck_assert_int_eq(append_n(t, 5, 1), 0);
	double waited = h_mono_ms() - t0;
	pthread_join(th, NULL);
	ck_assert_msg(waited >= 100 && waited < 2500, "waited %.0f ms", waited);
	uint64_t first;
	ck_assert_uint_eq(read_all(t, &first), 1);
	ck_assert_uint_eq(first, 5);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_block_times_out)
{
	/* With block and nobody releasing, the producer gets MQLOG_EFULL
	 * once full_block_ms has passed, and nothing is written. */
	mqlog *db = open_db();
	mqlog_topic_config c;
	mqlog_topic *t;

	mqlog_topic_config_init(&c);
	c.max_messages = 3;
	c.full_policy = MQLOG_FULL_BLOCK;
	c.full_block_ms = 120;
	ck_assert_int_eq(mqlog_topic_create(db, TOPIC, &c), 0);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	ck_assert_int_eq(append_n(t, 0, 3), 0);
	double t0 = h_mono_ms();
	ck_assert_int_eq(append_n(t, 3, 1), MQLOG_EFULL);
	double waited = h_mono_ms() - t0;
	ck_assert_msg(waited >= 100 && waited < 2000, "waited %.0f ms", waited);
	mqlog_partition_info pi;
	ck_assert_int_eq(mqlog_partition_stat(t, 0, &pi), 0);
	ck_assert_uint_eq(pi.end_offset, 3);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_block_across_processes)
{
	/* A producer blocked in one process is woken by a release made in
	 * another process. */
	mqlog *db = open_db();
	mqlog_topic *t =
		make_topic(db, 5, MQLOG_UNLIMITED, MQLOG_FULL_BLOCK, 1 << 20);
	ck_assert_int_eq(append_n(t, 0, 5), 0);
	mqlog_topic_close(t);
	mqlog_close(db);

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		mqlog *cdb;
		mqlog_topic *ct;
		if (mqlog_open(fx_dir, NULL, &cdb) ||
		    mqlog_topic_open(cdb, TOPIC, &ct))
			_exit(2);
		int rc = append_n(ct, 5, 1);
		mqlog_topic_close(ct);
		mqlog_close(cdb);
		_exit(rc == 0 ? 0 : 1);
	}
	db = open_db();
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	h_sleep_ms(200);
	ck_assert_int_eq(mqlog_partition_release(t, 0, 2), 0);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	mqlog_partition_info pi;
	ck_assert_int_eq(mqlog_partition_stat(t, 0, &pi), 0);
	ck_assert_uint_eq(pi.end_offset, 6);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_bytes_drop_oldest)
{
	/* A byte limit deletes whole old segments and keeps the partition
	 * near the limit; what remains is a dense suffix of the log. */
	mqlog *db = open_db();
	mqlog_topic *t = make_topic(db, MQLOG_UNLIMITED, 16384,
				    MQLOG_FULL_DROP_OLDEST, 4096);
	uint64_t first, n;
	mqlog_partition_info pi;

	ck_assert_int_eq(append_n(t, 0, 3000), 0);
	ck_assert_int_eq(mqlog_partition_stat(t, 0, &pi), 0);
	ck_assert_uint_le(pi.bytes, 16384);
	ck_assert_uint_gt(pi.bytes, 16384 - 2 * 4096);
	n = read_all(t, &first);
	ck_assert_uint_eq(first + n, 3000);
	ck_assert_uint_eq(first, pi.start_offset);
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);
}
END_TEST

START_TEST(test_age_retention)
{
	/* Sealed segments whose newest record is older than retention_ms are
	 * deleted as segments roll; recent ones stay. */
	mqlog *db = open_db();
	mqlog_topic_config c;
	mqlog_topic *t;
	int64_t now = h_wall_ms();

	mqlog_topic_config_init(&c);
	c.segment_bytes = 4096;
	c.retention_ms = 60000;
	ck_assert_int_eq(mqlog_topic_create(db, TOPIC, &c), 0);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	char v[32];
	for (int i = 0; i < 600; i++) {
		snprintf(v, sizeof v, "v%d", i);
		/* The first 400 are two hours old. */
		mqlog_msg m = { .value = { v, strlen(v) },
				.timestamp = i < 400 ? now - 7200000 : now };
		ck_assert_int_eq(
			mqlog_append(t, 0, &m, 1, MQLOG_SYNC_DEFAULT, NULL), 0);
	}
	uint64_t first, n = read_all(t, &first);
	ck_assert_uint_eq(first + n, 600);
	ck_assert_uint_le(first, 400); /* nothing recent was removed */
	ck_assert_uint_gt(first, 100);
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);
}
END_TEST

START_TEST(test_age_maintain)
{
	/* Segments that age out after the last roll are deleted by
	 * mqlog_maintain, or by the maintenance thread. */
	mqlog_options o;
	mqlog *db;
	mqlog_topic_config c;
	mqlog_topic *t;

	mqlog_options_init(&o);
	o.maintenance_ms = 100;
	ck_assert_int_eq(mqlog_open(fx_dir, &o, &db), 0);
	mqlog_topic_config_init(&c);
	c.segment_bytes = 4096;
	c.retention_ms = 1000;
	ck_assert_int_eq(mqlog_topic_create(db, TOPIC, &c), 0);
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	ck_assert_int_eq(append_n(t, 0, 500), 0);
	size_t before = count_segments();
	ck_assert_uint_gt(before, 2);
	ck_assert_int_eq(mqlog_sync(db), 0); /* summaries reach LMDB */
	/* Wait for the records to age out; the thread deletes them. */
	double t0 = h_mono_ms();
	while (count_segments() > 1 && h_mono_ms() - t0 < 5000)
		h_sleep_ms(50);
	ck_assert_uint_eq(count_segments(), 1);
	ck_assert_int_eq(mqlog_maintain(db, NULL), 0); /* idempotent */
	uint64_t first, n = read_all(t, &first);
	ck_assert_uint_eq(first + n, 500);
	ck_assert_uint_gt(first, 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_crash_during_deletion)
{
	/* A deletion that stopped after persisting the new start but before
	 * the files went is finished by recovery; the released records are
	 * never returned and the directory verifies. */
	mqlog *db = open_db();
	mqlog_topic *t = make_topic(db, MQLOG_UNLIMITED, MQLOG_UNLIMITED,
				    MQLOG_FULL_REJECT, 4096);
	ck_assert_int_eq(append_n(t, 0, 800), 0);
	size_t before = count_segments();
	io_fault_set(IO_OP_UNLINK, 1, EIO, true);
	ck_assert_int_ne(mqlog_partition_release(t, 0, 500), 0);
	io_fault_clear();
	ck_assert_uint_eq(count_segments(), before);
	mqlog_topic_close(t);
	mqlog_close(db);

	db = open_db();
	ck_assert_int_eq(mqlog_topic_open(db, TOPIC, &t), 0);
	uint64_t first, n = read_all(t, &first);
	ck_assert_uint_eq(first, 500);
	ck_assert_uint_eq(n, 300);
	ck_assert_uint_lt(count_segments(), before);
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);
}
END_TEST

START_TEST(test_reader_on_deleted_segment)
{
	/* A reader whose segment is deleted keeps valid memory: it gets
	 * MQLOG_ERANGE when it moves on and can seek to the new start. */
	mqlog *db = open_db();
	mqlog_topic *t = make_topic(db, MQLOG_UNLIMITED, MQLOG_UNLIMITED,
				    MQLOG_FULL_REJECT, 4096);
	mqlog_reader *r;
	mqlog_record rec;

	ck_assert_int_eq(append_n(t, 0, 600), 0);
	ck_assert_int_eq(mqlog_reader_open(t, 0, &r), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_int_eq(mqlog_partition_release(t, 0, 400), 0);
	/* The record already handed out is still readable memory. */
	ck_assert_uint_eq(rec.value.len, 2);
	ck_assert(memcmp(rec.value.data, "v0", 2) == 0);
	int rc;
	while ((rc = mqlog_reader_next(r, &rec)) == 1)
		ck_assert_uint_lt(rec.offset, 400);
	ck_assert_int_eq(rc, MQLOG_ERANGE);
	ck_assert_int_eq(mqlog_reader_seek(r, MQLOG_OFFSET_EARLIEST), 0);
	ck_assert_int_eq(mqlog_reader_next(r, &rec), 1);
	ck_assert_uint_eq(rec.offset, 400);
	mqlog_reader_close(r);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

struct wm {
	int calls;    /* callbacks */
	double usage; /* last usage */
};

static void on_wm(void *arg, const char *topic, uint32_t partition,
		  double usage)
{
	struct wm *w = arg;
	ck_assert_str_eq(topic, TOPIC);
	ck_assert_uint_eq(partition, 0);
	w->calls++;
	w->usage = usage;
}

START_TEST(test_watermark)
{
	/* The watermark callback fires once when usage reaches 80 %, and
	 * again only after usage fell below it. */
	struct wm w = { 0, 0 };
	mqlog_options o;
	mqlog *db;
	mqlog_topic *t;

	mqlog_options_init(&o);
	o.on_watermark = on_wm;
	o.watermark_arg = &w;
	ck_assert_int_eq(mqlog_open(fx_dir, &o, &db), 0);
	t = make_topic(db, 10, MQLOG_UNLIMITED, MQLOG_FULL_REJECT, 1 << 20);
	ck_assert_int_eq(append_n(t, 0, 7), 0);
	ck_assert_int_eq(w.calls, 0);
	ck_assert_int_eq(append_n(t, 7, 1), 0);
	ck_assert_int_eq(w.calls, 1);
	ck_assert(w.usage >= 0.8);
	ck_assert_int_eq(append_n(t, 8, 2), 0);
	ck_assert_int_eq(w.calls, 1);
	ck_assert_int_eq(mqlog_partition_release(t, 0, 6), 0);
	ck_assert_int_eq(append_n(t, 10, 1), 0); /* 5 of 10: below */
	ck_assert_int_eq(w.calls, 1);
	ck_assert_int_eq(append_n(t, 11, 3), 0); /* 8 of 10 */
	ck_assert_int_eq(w.calls, 2);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

START_TEST(test_watermark_reads_no_files)
{
	/* With a watermark callback, every append of a limited topic checks
	 * the usage: from the shared state, never by opening the partition's
	 * segment files (that made each append cost a system call per
	 * segment). */
	struct wm w = { 0, 0 };
	mqlog_partition_info pi;
	mqlog_options o;
	size_t opens = 0;
	mqlog *db;
	mqlog_topic *t;

	mqlog_options_init(&o);
	o.on_watermark = on_wm;
	o.watermark_arg = &w;
	ck_assert_int_eq(mqlog_open(fx_dir, &o, &db), 0);
	t = make_topic(db, 1000000, MQLOG_UNLIMITED, MQLOG_FULL_DROP_OLDEST,
		       4096);
	ck_assert_int_eq(append_n(t, 0, 300), 0);
	ck_assert_int_eq(mqlog_partition_stat(t, 0, &pi), 0);
	ck_assert_uint_ge(pi.segments, 4);

	io_record_start();
	ck_assert_int_eq(append_n(t, 300, 20), 0);
	io_record_stop();
	for (size_t i = 0; i < io_record_count(); i++)
		opens += io_record_get(i)->op == IO_REC_OPEN;
	io_record_free();
	/* Twenty appends roll at most once or twice (one new file each). */
	ck_assert_uint_le(opens, 2);
	ck_assert_int_eq(w.calls, 0);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("retention");
	TCase *tc = tcase_create("retention");

	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_count_drop_oldest_exact);
	tcase_add_test(tc, test_watermark_reads_no_files);
	tcase_add_test(tc, test_count_reject);
	tcase_add_test(tc, test_block_unblocks_on_release);
	tcase_add_test(tc, test_block_times_out);
	tcase_add_test(tc, test_block_across_processes);
	tcase_add_test(tc, test_bytes_drop_oldest);
	tcase_add_test(tc, test_age_retention);
	tcase_add_test(tc, test_age_maintain);
	tcase_add_test(tc, test_crash_during_deletion);
	tcase_add_test(tc, test_reader_on_deleted_segment);
	tcase_add_test(tc, test_watermark);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
