/*
 * test_topic.c - topics: create, list, open, describe, delete; names and
 * configurations validated before anything reaches the disk; configuration
 * persisted across reopen.
 */
#include "helpers.h"

/* The data directory lives in fx_dir/db so a stray "../x" would show up as
 * an extra entry of fx_dir. */
static const char *dbdir(void)
{
	return fx_path("%s/db", fx_dir);
}

static void assert_cfg_eq(const mqlog_topic_config *a,
			  const mqlog_topic_config *b)
{
	ck_assert_uint_eq(a->partitions, b->partitions);
	ck_assert_uint_eq(a->segment_bytes, b->segment_bytes);
	ck_assert_int_eq(a->sync, b->sync);
	ck_assert_uint_eq(a->sync_interval_ms, b->sync_interval_ms);
	ck_assert_int_eq(a->retention_ms, b->retention_ms);
	ck_assert_int_eq(a->retention_bytes, b->retention_bytes);
	ck_assert_int_eq(a->max_messages, b->max_messages);
	ck_assert_int_eq(a->full_policy, b->full_policy);
	ck_assert_uint_eq(a->max_record_bytes, b->max_record_bytes);
	ck_assert_uint_eq(a->index_interval_bytes, b->index_interval_bytes);
}

static size_t list_count(mqlog *db)
{
	char **names = NULL;
	size_t n = 99;
	int rc = mqlog_topic_list(db, &names, &n);
	ck_assert_int_eq(rc, 0);
	mqlog_list_free(names, n);
	return n;
}

/* ------------------------------------------------------------------------ */

/* Created topics are listed sorted, open with their name, partition count
 * and configuration, and start with empty partitions. */
START_TEST(test_create_list_open_describe)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c3 = h_cfg(3, 1 << 20, MQLOG_SYNC_NONE);
	mqlog_topic_config got;
	mqlog_topic *t;
	char **names = NULL;
	size_t n = 0;

	h_create(db, "zeta", NULL);
	h_create(db, "alpha", &c3);
	h_create(db, "Mid-1.x_y", NULL);

	ck_assert_int_eq(mqlog_topic_list(db, &names, &n), 0);
	ck_assert_uint_eq(n, 3);
	/* Sorted bytewise: uppercase before lowercase. */
	ck_assert_str_eq(names[0], "Mid-1.x_y");
	ck_assert_str_eq(names[1], "alpha");
	ck_assert_str_eq(names[2], "zeta");
	mqlog_list_free(names, n);

	t = h_topic(db, "alpha");
	ck_assert_str_eq(mqlog_topic_name(t), "alpha");
	ck_assert_uint_eq(mqlog_topic_partitions(t), 3);
	mqlog_topic_config_get(t, &got);
	assert_cfg_eq(&got, &c3);
	for (uint32_t p = 0; p < 3; p++) {
		struct mqlog_partition_info info = h_info(t, p);
		ck_assert_uint_eq(info.start_offset, 0);
		ck_assert_uint_eq(info.end_offset, 0);
		ck_assert_uint_eq(info.bytes, 0);
		ck_assert_int_eq(info.failed, 0);
	}
	{
		struct mqlog_partition_info info;
		ck_assert_int_eq(mqlog_partition_stat(t, 3, &info),
				 MQLOG_EINVAL);
		H_ASSERT_MSG(db);
	}
	mqlog_topic_close(t);

	{
		mqlog_topic *none = (mqlog_topic *)&got; /* sentinel */
		ck_assert_int_eq(mqlog_topic_open(db, "nope", &none),
				 MQLOG_ENOENT);
		ck_assert_ptr_eq(none, (mqlog_topic *)&got);
		H_ASSERT_MSG(db);
		ck_assert_msg(h_contains(mqlog_errmsg(db), "nope"),
			      "message does not name the topic: %s",
			      mqlog_errmsg(db));
	}
	mqlog_close(db);
}
END_TEST

/* An empty directory lists no topics, and freeing an empty list is fine. */
START_TEST(test_list_empty)
{
	mqlog *db = h_open(dbdir());
	ck_assert_uint_eq(list_count(db), 0);
	mqlog_list_free(NULL, 0);
	mqlog_close(db);
}
END_TEST

/* Every field of the topic configuration survives closing and reopening the
 * directory. */
START_TEST(test_config_persisted)
{
	mqlog_topic_config a, b, got;
	mqlog *db;
	mqlog_topic *t;

	mqlog_topic_config_init(&a);
	a.partitions = 5;
	a.segment_bytes = 8192;
	a.sync = MQLOG_SYNC_ALWAYS;
	a.sync_interval_ms = 250;
	a.retention_ms = 3600000;
	a.retention_bytes = 1 << 20;
	a.max_messages = 12345;
	a.full_policy = MQLOG_FULL_REJECT;
	a.max_record_bytes = 4000;
	a.index_interval_bytes = 512;

	mqlog_topic_config_init(&b);
	b.partitions = 2;
	b.segment_bytes = UINT64_C(3) << 30;
	b.sync = MQLOG_SYNC_INTERVAL;
	b.sync_interval_ms = 77;
	b.retention_ms = MQLOG_UNLIMITED;
	b.retention_bytes = MQLOG_UNLIMITED;
	b.max_messages = MQLOG_UNLIMITED;
	b.full_policy = MQLOG_FULL_BLOCK;
	b.max_record_bytes = 123457;
	b.index_interval_bytes = 65536;

	db = h_open(dbdir());
	h_create(db, "a", &a);
	h_create(db, "b", &b);
	mqlog_close(db);

	for (int round = 0; round < 2; round++) {
		db = h_open(dbdir());
		t = h_topic(db, "a");
		mqlog_topic_config_get(t, &got);
		assert_cfg_eq(&got, &a);
		ck_assert_uint_eq(mqlog_topic_partitions(t), 5);
		mqlog_topic_close(t);
		t = h_topic(db, "b");
		mqlog_topic_config_get(t, &got);
		assert_cfg_eq(&got, &b);
		ck_assert_uint_eq(mqlog_topic_partitions(t), 2);
		mqlog_topic_close(t);
		mqlog_close(db);
	}
}
END_TEST

/* mqlog_topic_config_init gives the documented defaults, and a topic created
 * with a NULL configuration gets exactly them. */
START_TEST(test_defaults)
{
	mqlog_topic_config d, got;
	mqlog *db;
	mqlog_topic *t;

	memset(&d, 0x5A, sizeof d);
	mqlog_topic_config_init(&d);
	ck_assert_uint_eq(d.partitions, 1);
	ck_assert_uint_eq(d.segment_bytes, UINT64_C(1) << 30);
	ck_assert_int_eq(d.sync, MQLOG_SYNC_NONE);
	ck_assert_uint_eq(d.sync_interval_ms, 1000);
	ck_assert_int_eq(d.full_policy, MQLOG_FULL_DROP_OLDEST);
	ck_assert_uint_eq(d.max_record_bytes, 1u << 20);
	ck_assert_uint_eq(d.index_interval_bytes, 4096);

	db = h_open(dbdir());
	h_create(db, "dflt", NULL);
	t = h_topic(db, "dflt");
	mqlog_topic_config_get(t, &got);
	assert_cfg_eq(&got, &d);
	ck_assert_uint_eq(mqlog_topic_partitions(t), 1);
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* Invalid topic names are rejected with MQLOG_EINVAL, a message that names
 * the problem, and nothing on disk. */
START_TEST(test_invalid_names)
{
	char long250[251], long249[250];
	const char *bad[] = { "",	".",	  "..",	  "a/b",  "\x01x",
			      "a b",	long250,  "../x", "a\\b", "x\xc3\xa9",
			      "tab\tx", "new\nl", "/abs", "a:b",  "*" };
	const char *good[] = { "-ok_.Name", long249, "...", "a", "_", "0" };
	mqlog *db = h_open(dbdir());
	int before_db = h_dir_entries(dbdir());
	int before_topics = h_dir_entries(fx_path("%s/topics", dbdir()));

	memset(long250, 'a', 250);
	long250[250] = '\0';
	memset(long249, 'a', 249);
	long249[249] = '\0';

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc;
		ck_assert_msg(mqlog_topic_name_valid(bad[i]) == 0,
			      "name #%zu accepted by mqlog_topic_name_valid",
			      i);
		rc = mqlog_topic_create(db, bad[i], NULL);
		ck_assert_msg(rc == MQLOG_EINVAL,
			      "create of bad name #%zu returned %d %s", i, rc,
			      mqlog_errname(rc));
		H_ASSERT_MSG(db);
		ck_assert_msg(h_contains(mqlog_errmsg(db), "name") ||
				      (bad[i][0] && bad[i][0] != '\x01' &&
				       h_contains(mqlog_errmsg(db), bad[i])),
			      "message for bad name #%zu does not mention the "
			      "name: %s",
			      i, mqlog_errmsg(db));
		{
			mqlog_topic *t = NULL;
			rc = mqlog_topic_open(db, bad[i], &t);
			ck_assert_msg(rc == MQLOG_EINVAL || rc == MQLOG_ENOENT,
				      "open of bad name #%zu returned %d", i,
				      rc);
			ck_assert_ptr_null(t);
		}
	}
	ck_assert_uint_eq(list_count(db), 0);
	/* Nothing created anywhere: not in the data directory, not beside it
	 * ("../x"), not under topics/. */
	ck_assert_int_eq(h_dir_entries(dbdir()), before_db);
	ck_assert_int_eq(h_dir_entries(fx_path("%s/topics", dbdir())),
			 before_topics);
	ck_assert_int_eq(h_dir_entries(fx_dir), 1);
	ck_assert(!h_exists(fx_path("%s/x", dbdir())));
	ck_assert(!h_exists(fx_path("%s/topics/x", dbdir())));

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		ck_assert_msg(mqlog_topic_name_valid(good[i]) == 1,
			      "good name #%zu rejected", i);
		h_create(db, good[i], NULL);
	}
	ck_assert_uint_eq(list_count(db), sizeof good / sizeof good[0]);
	{
		mqlog_topic *t = h_topic(db, long249);
		ck_assert_str_eq(mqlog_topic_name(t), long249);
		mqlog_topic_close(t);
	}
	mqlog_close(db);
}
END_TEST

/* Invalid configurations are rejected with MQLOG_EINVAL naming the field,
 * and no topic is created. */
START_TEST(test_invalid_configs)
{
	struct {
		const char *field;
		mqlog_topic_config c;
	} cases[6];
	size_t n = 0;
	mqlog *db = h_open(dbdir());
	int before_topics = h_dir_entries(fx_path("%s/topics", dbdir()));

	cases[n].field = "partition";
	cases[n++].c = h_cfg(0, 1 << 20, MQLOG_SYNC_NONE);
	cases[n].field = "partition";
	cases[n++].c =
		h_cfg(MQLOG_MAX_PARTITIONS + 1, 1 << 20, MQLOG_SYNC_NONE);
	cases[n].field = "segment";
	cases[n++].c = h_cfg(1, 4095, MQLOG_SYNC_NONE);
	cases[n].field = "segment";
	cases[n++].c = h_cfg(1, 0, MQLOG_SYNC_NONE);
	cases[n].field = "sync";
	cases[n++].c = h_cfg(1, 1 << 20, 7);
	cases[n].field = "full";
	cases[n].c = h_cfg(1, 1 << 20, MQLOG_SYNC_NONE);
	cases[n++].c.full_policy = 9;

	for (size_t i = 0; i < n; i++) {
		int rc = mqlog_topic_create(db, "t", &cases[i].c);
		ck_assert_msg(rc == MQLOG_EINVAL, "config #%zu: rc %d %s", i,
			      rc, mqlog_errname(rc));
		H_ASSERT_MSG(db);
		ck_assert_msg(h_contains(mqlog_errmsg(db), cases[i].field),
			      "config #%zu: message does not name '%s': %s", i,
			      cases[i].field, mqlog_errmsg(db));
		ck_assert_uint_eq(list_count(db), 0);
		ck_assert(!h_exists(fx_path("%s/topics/t", dbdir())));
	}
	ck_assert_int_eq(h_dir_entries(fx_path("%s/topics", dbdir())),
			 before_topics);

	/* The boundaries themselves are accepted. */
	{
		mqlog_topic_config ok = h_cfg(1, 4096, MQLOG_SYNC_NONE);
		h_create(db, "t", &ok);
	}
	mqlog_close(db);
	/* And the rejected attempts left nothing behind after a reopen. */
	db = h_open(dbdir());
	ck_assert_uint_eq(list_count(db), 1);
	mqlog_close(db);
}
END_TEST

/* Creating an existing topic fails with MQLOG_EEXIST and keeps the original
 * configuration and data. */
START_TEST(test_eexist)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c2 = h_cfg(2, 8192, MQLOG_SYNC_NONE);
	mqlog_topic_config c5 = h_cfg(5, 16384, MQLOG_SYNC_NONE);
	mqlog_topic_config got;
	mqlog_topic *t;
	int rc;

	h_create(db, "dupname", &c2);
	t = h_topic(db, "dupname");
	h_append1(t, 1, "keep me");
	mqlog_topic_close(t);

	rc = mqlog_topic_create(db, "dupname", &c5);
	ck_assert_int_eq(rc, MQLOG_EEXIST);
	H_ASSERT_MSG(db);
	ck_assert_msg(h_contains(mqlog_errmsg(db), "dupname"), "%s",
		      mqlog_errmsg(db));
	rc = mqlog_topic_create(db, "dupname", NULL);
	ck_assert_int_eq(rc, MQLOG_EEXIST);

	t = h_topic(db, "dupname");
	mqlog_topic_config_get(t, &got);
	assert_cfg_eq(&got, &c2);
	ck_assert_uint_eq(h_info(t, 1).end_offset, 1);
	mqlog_topic_close(t);
	ck_assert_uint_eq(list_count(db), 1);
	mqlog_close(db);
}
END_TEST

/* Deleting a topic removes its files and metadata; recreating the name
 * gives a fresh, empty topic with the new configuration. */
START_TEST(test_delete_recreate)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c3 = h_cfg(3, 4096, MQLOG_SYNC_NONE);
	mqlog_topic_config c1 = h_cfg(1, 8192, MQLOG_SYNC_NONE);
	mqlog_topic_config got;
	mqlog_topic *t;
	struct h_recs rs = { 0 };
	char val[200];

	h_create(db, "t", &c3);
	h_create(db, "other", NULL);
	t = h_topic(db, "t");
	memset(val, 'v', sizeof val - 1);
	val[sizeof val - 1] = '\0';
	for (int i = 0; i < 60; i++)
		h_append1(t, (uint32_t)(i % 3), val);
	mqlog_topic_close(t);
	ck_assert(h_exists(fx_path("%s/topics/t", dbdir())));

	ck_assert_int_eq(mqlog_topic_delete(db, "t"), 0);
	ck_assert(!h_exists(fx_path("%s/topics/t", dbdir())));
	ck_assert_uint_eq(list_count(db), 1);
	t = NULL;
	ck_assert_int_eq(mqlog_topic_open(db, "t", &t), MQLOG_ENOENT);
	ck_assert_ptr_null(t);

	h_create(db, "t", &c1);
	t = h_topic(db, "t");
	mqlog_topic_config_get(t, &got);
	assert_cfg_eq(&got, &c1);
	ck_assert_uint_eq(mqlog_topic_partitions(t), 1);
	ck_assert_uint_eq(h_info(t, 0).end_offset, 0);
	ck_assert_uint_eq(h_info(t, 0).start_offset, 0);
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, 0);
	ck_assert_uint_eq(h_append1(t, 0, "fresh"), 0);
	h_read_all(t, 0, &rs);
	ck_assert_uint_eq(rs.n, 1);
	ck_assert_str_eq(rs.r[0].val, "fresh");
	h_recs_free(&rs);
	mqlog_topic_close(t);

	/* The other topic is untouched. */
	t = h_topic(db, "other");
	mqlog_topic_close(t);
	mqlog_close(db);
}
END_TEST

/* A topic this process has open cannot be deleted (MQLOG_EBUSY) and keeps
 * working; once closed it can. */
START_TEST(test_delete_busy)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic *t;
	int rc;

	h_create(db, "busytopic", NULL);
	t = h_topic(db, "busytopic");
	h_append1(t, 0, "a");
	rc = mqlog_topic_delete(db, "busytopic");
	ck_assert_int_eq(rc, MQLOG_EBUSY);
	H_ASSERT_MSG(db);
	ck_assert_msg(h_contains(mqlog_errmsg(db), "busytopic"), "%s",
		      mqlog_errmsg(db));
	ck_assert_uint_eq(h_append1(t, 0, "b"), 1);
	ck_assert_uint_eq(list_count(db), 1);
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_topic_delete(db, "busytopic"), 0);
	ck_assert_uint_eq(list_count(db), 0);
	mqlog_close(db);
}
END_TEST

/* Deleting an unknown topic fails with MQLOG_ENOENT naming it; deleting a
 * bad name fails with MQLOG_EINVAL. */
START_TEST(test_delete_unknown)
{
	mqlog *db = h_open(dbdir());
	int rc = mqlog_topic_delete(db, "ghost");
	ck_assert_int_eq(rc, MQLOG_ENOENT);
	H_ASSERT_MSG(db);
	ck_assert_msg(h_contains(mqlog_errmsg(db), "ghost"), "%s",
		      mqlog_errmsg(db));
	rc = mqlog_topic_delete(db, "../ghost");
	ck_assert_int_eq(rc, MQLOG_EINVAL);
	H_ASSERT_MSG(db);
	mqlog_close(db);
}
END_TEST

/* After a deletion no file of the topic remains and a reopened directory
 * no longer lists it. */
START_TEST(test_delete_persisted)
{
	mqlog *db = h_open(dbdir());
	mqlog_topic_config c = h_cfg(4, 4096, MQLOG_SYNC_ALWAYS);
	mqlog_topic *t;
	char **names = NULL;
	size_t n = 0;

	h_create(db, "gone", &c);
	h_create(db, "kept", NULL);
	t = h_topic(db, "gone");
	for (int i = 0; i < 40; i++)
		h_append1(t, (uint32_t)(i % 4), "some bytes for the segment");
	mqlog_topic_close(t);
	ck_assert_int_eq(mqlog_topic_delete(db, "gone"), 0);
	mqlog_close(db);

	/* Nothing named after it under topics/, not even a temporary. */
	{
		DIR *d = opendir(fx_path("%s/topics", dbdir()));
		struct dirent *e;
		ck_assert_ptr_nonnull(d);
		while ((e = readdir(d)) != NULL)
			ck_assert_msg(strstr(e->d_name, "gone") == NULL,
				      "left behind: topics/%s", e->d_name);
		closedir(d);
	}

	db = h_open(dbdir());
	ck_assert_int_eq(mqlog_topic_list(db, &names, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(names[0], "kept");
	mqlog_list_free(names, n);
	t = NULL;
	ck_assert_int_eq(mqlog_topic_open(db, "gone", &t), MQLOG_ENOENT);
	ck_assert_int_eq(mqlog_verify(db, NULL, NULL, NULL, NULL), 0);
	mqlog_close(db);
}
END_TEST

/* Topics created in one open are visible to a second handle on the same
 * directory in this process. */
START_TEST(test_two_handles_same_dir)
{
	mqlog *a = h_open(dbdir());
	mqlog *b = h_open(dbdir());
	mqlog_topic *t;
	h_create(a, "shared", NULL);
	t = h_topic(b, "shared");
	ck_assert_uint_eq(h_append1(t, 0, "x"), 0);
	mqlog_topic_close(t);
	ck_assert_uint_eq(list_count(b), 1);
	mqlog_close(a);
	ck_assert_uint_eq(list_count(b), 1);
	mqlog_close(b);
}
END_TEST

static Suite *topic_suite(void)
{
	Suite *s = suite_create("topic");
	TCase *tc = tcase_create("topic");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_create_list_open_describe);
	tcase_add_test(tc, test_list_empty);
	tcase_add_test(tc, test_config_persisted);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_invalid_names);
	tcase_add_test(tc, test_invalid_configs);
	tcase_add_test(tc, test_eexist);
	tcase_add_test(tc, test_delete_recreate);
	tcase_add_test(tc, test_delete_busy);
	tcase_add_test(tc, test_delete_unknown);
	tcase_add_test(tc, test_delete_persisted);
	tcase_add_test(tc, test_two_handles_same_dir);
	suite_add_tcase(s, tc);
	return s;
}

H_MAIN(topic_suite)
