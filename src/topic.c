/*
 * topic.c - topics: names, configuration, creation and deletion (both
 * crash-safe), open handles, and the entry points that route to partitions.
 *
 * A topic is a directory DIR/topics/NAME holding topic.conf (its id and
 * configuration) and one directory per partition, plus an entry in LMDB's
 * topics database.  LMDB is the arbiter of which topics exist; topic.conf
 * lets a topic be adopted again when the metadata environment was lost.
 *
 * Create: allocate the id in LMDB, build the directory under a temporary
 * name (.creating.ID), fsync, rename into place, fsync the parent.
 * Delete: mark every partition state deleted, rename the directory to
 * .deleting.ID, fsync the parent, drop the LMDB entries, remove the files.
 * The first process to open the directory finishes or undoes whatever a
 * crash interrupted (topic_reconcile).
 *
 * topic.conf layout (little-endian):
 *   u32 magic "MQTC", u32 n, n bytes of topic_conf_encode(), u64 XXH3-64 of
 *   those n bytes.
 */
#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOPIC_CONF_MAGIC 0x4354514Du /* "MQTC" */

/* ======================================================================== */
/* Names and configuration                                                  */
/* ======================================================================== */

int mqlog_topic_name_valid(const char *name)
{
	size_t n = 0;

	if (!name)
		return 0;
	for (const char *c = name; *c; c++, n++) {
		bool ok = (*c >= 'a' && *c <= 'z') ||
			  (*c >= 'A' && *c <= 'Z') ||
			  (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' ||
			  *c == '-';
		if (!ok || n >= MQLOG_TOPIC_NAME_MAX)
			return 0;
	}
	if (n == 0 || !strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	return 1;
}

static int check_name(const char *name, const char *what)
{
	if (!name)
		return mq_err(MQLOG_EINVAL, "%s: topic name is NULL", what);
	if (!mqlog_topic_name_valid(name)) {
		/* Quote at most a prefix: the name may be huge or binary. */
		char shown[64];
		size_t i;
		for (i = 0; name[i] && i < sizeof shown - 4; i++)
			shown[i] = (name[i] >= 0x20 && name[i] < 0x7f) ?
					   name[i] :
					   '?';
		shown[i] = 0;
		if (name[i])
			strcat(shown, "...");
		return mq_err(MQLOG_EINVAL,
			      "%s: invalid topic name \"%s\" (1-%d characters "
			      "of [A-Za-z0-9._-], not \".\" or \"..\")",
			      what, shown, MQLOG_TOPIC_NAME_MAX);
	}
	return 0;
}

void mqlog_topic_config_init(mqlog_topic_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->partitions = 1;
	cfg->segment_bytes = UINT64_C(1) << 30;
	cfg->sync = MQLOG_SYNC_NONE;
	cfg->sync_interval_ms = 1000;
	cfg->retention_ms = MQLOG_UNLIMITED;
	cfg->retention_bytes = MQLOG_UNLIMITED;
	cfg->max_messages = MQLOG_UNLIMITED;
	cfg->full_policy = MQLOG_FULL_DROP_OLDEST;
	cfg->max_record_bytes = 1u << 20;
	cfg->index_interval_bytes = 4096;
	cfg->full_block_ms = 30000;
	cfg->max_attempts = 5;
	cfg->retry_delay_ms = 1000;
}

int topic_config_validate(const mqlog_topic_config *c)
{
	if (c->partitions < 1 || c->partitions > MQLOG_MAX_PARTITIONS)
		return mq_err(MQLOG_EINVAL, "partitions %u: must be 1..%u",
			      c->partitions, MQLOG_MAX_PARTITIONS);
	if (c->segment_bytes < 4096 || c->segment_bytes > (UINT64_C(1) << 40))
		return mq_err(MQLOG_EINVAL,
			      "segment_bytes %llu: must be 4096..2^40",
			      (unsigned long long)c->segment_bytes);
	if (c->sync < MQLOG_SYNC_NONE || c->sync > MQLOG_SYNC_ALWAYS)
		return mq_err(MQLOG_EINVAL,
			      "sync policy %d: must be none, "
			      "interval or always",
			      c->sync);
	if (c->sync_interval_ms < 1 || c->sync_interval_ms > 86400000u)
		return mq_err(MQLOG_EINVAL,
			      "sync_interval_ms %u: must be "
			      "1..86400000",
			      c->sync_interval_ms);
	if (c->retention_ms < MQLOG_UNLIMITED || c->retention_ms == 0)
		return mq_err(MQLOG_EINVAL,
			      "retention_ms %lld: must be > 0 or "
			      "unlimited (-1)",
			      (long long)c->retention_ms);
	if (c->retention_bytes < MQLOG_UNLIMITED || c->retention_bytes == 0)
		return mq_err(MQLOG_EINVAL,
			      "retention_bytes %lld: must be > 0 "
			      "or unlimited (-1)",
			      (long long)c->retention_bytes);
	if (c->max_messages < MQLOG_UNLIMITED || c->max_messages == 0)
		return mq_err(MQLOG_EINVAL,
			      "max_messages %lld: must be > 0 or "
			      "unlimited (-1)",
			      (long long)c->max_messages);
	if (c->full_policy < MQLOG_FULL_DROP_OLDEST ||
	    c->full_policy > MQLOG_FULL_BLOCK)
		return mq_err(MQLOG_EINVAL,
			      "full policy %d: must be "
			      "drop-oldest, reject or block",
			      c->full_policy);
	if (c->max_record_bytes < 64 || c->max_record_bytes > (256u << 20))
		return mq_err(MQLOG_EINVAL,
			      "max_record_bytes %u: must be "
			      "64..268435456",
			      c->max_record_bytes);
	if (c->index_interval_bytes < 1)
		return mq_err(MQLOG_EINVAL,
			      "index_interval_bytes must be >= 1");
	if (c->interest != 0 && c->interest != 1)
		return mq_err(MQLOG_EINVAL,
			      "interest %d: must be 0 (off) or 1 "
			      "(interest retention)",
			      c->interest);
	if (c->max_attempts < 1 || c->max_attempts > 1000)
		return mq_err(MQLOG_EINVAL, "max_attempts %u: must be 1..1000",
			      c->max_attempts);
	if (c->retry_delay_ms > 86400000u)
		return mq_err(MQLOG_EINVAL,
			      "retry_delay_ms %u: must be "
			      "0..86400000",
			      c->retry_delay_ms);
	return 0;
}

/* ======================================================================== */
/* topic.conf                                                               */
/* ======================================================================== */

static int conf_write(const char *dir, const struct topic_meta *m)
{
	uint8_t buf[8 + TOPIC_CONF_ENCODED_MAX + 8];
	char path[MQ_PATH_MAX];
	size_t n = topic_conf_encode(m, buf + 8);
	int fd, rc;

	mq_st32(buf, TOPIC_CONF_MAGIC);
	mq_st32(buf + 4, (uint32_t)n);
	mq_st64(buf + 8 + n, record_key_hash(buf + 8, n));
	snprintf(path, sizeof path, "%s/topic.conf", dir);
	fd = io_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return mq_err(fd, "%s", path);
	rc = io_pwrite_all(fd, buf, 16 + n, 0);
	if (!rc)
		rc = io_fdatasync(fd);
	io_close(fd);
	return rc ? mq_err(rc, "%s", path) : 0;
}

static int conf_read(const char *dir, struct topic_meta *m)
{
	uint8_t buf[8 + TOPIC_CONF_ENCODED_MAX + 8 + 1];
	char path[MQ_PATH_MAX];
	ssize_t got;
	uint32_t n;
	int fd;

	snprintf(path, sizeof path, "%s/topic.conf", dir);
	fd = io_open(path, O_RDONLY, 0);
	if (fd < 0)
		return mq_err(fd, "%s", path);
	got = io_pread(fd, buf, sizeof buf, 0);
	io_close(fd);
	if (got < 16 || mq_ld32(buf) != TOPIC_CONF_MAGIC)
		return mq_err(MQLOG_ECORRUPT, "%s: not a topic.conf", path);
	n = mq_ld32(buf + 4);
	if (n > TOPIC_CONF_ENCODED_MAX || (size_t)got != 16 + n ||
	    mq_ld64(buf + 8 + n) != record_key_hash(buf + 8, n))
		return mq_err(MQLOG_ECORRUPT, "%s: checksum mismatch", path);
	return topic_conf_decode(buf + 8, n, m);
}

/* ======================================================================== */
/* Reconciliation after a crash (first opener only)                         */
/* ======================================================================== */

int topic_reconcile(struct mqlog *db)
{
	char topics[MQ_PATH_MAX], path[MQ_PATH_MAX];
	char **names = NULL;
	size_t count = 0;
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (db->rdonly)
		return 0;
	snprintf(topics, sizeof topics, "%s/topics", db->path);
	d = opendir(topics);
	if (!d)
		return mq_err(-errno, "%s", topics);
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		struct topic_meta m;
		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		snprintf(path, sizeof path, "%s/%s", topics, n);
		if (!strncmp(n, ".creating.", 10) ||
		    !strncmp(n, ".deleting.", 10)) {
			/* Half-built topics never existed; half-deleted ones
			 * were already removed from the caller's view. */
			(void)io_rmtree(path);
			continue;
		}
		if (!mqlog_topic_name_valid(n))
			continue;
		if (index_topic_get(db->ix, n, &m) == 0)
			continue;
		/* A topic directory without metadata: the metadata was lost
		 * or reset.  Adopt it from its topic.conf. */
		if (conf_read(path, &m) == 0) {
			rc = index_topic_put(db->ix, n, &m);
			if (rc)
				break;
		}
	}
	closedir(d);
	if (rc)
		return rc;
	(void)io_fsync_dir(topics);

	/* Metadata without a directory: a create that died before its rename
	 * or a delete that died after it. */
	rc = index_topic_list(db->ix, &names, &count);
	if (rc)
		return rc;
	for (size_t i = 0; i < count && !rc; i++) {
		struct stat st;
		struct topic_meta m;
		snprintf(path, sizeof path, "%s/%s", topics, names[i]);
		if (stat(path, &st) == 0 || errno != ENOENT)
			continue;
		if (index_topic_get(db->ix, names[i], &m) == 0)
			rc = index_topic_delete(db->ix, names[i], m.id);
	}
	mqlog_list_free(names, count);
	return rc;
}

/* ======================================================================== */
/* Create / delete / list                                                   */
/* ======================================================================== */

int mqlog_topic_create(mqlog *db, const char *name,
		       const mqlog_topic_config *cfg)
{
	mqlog_topic_config defaults;
	struct topic_meta m;
	char topics[MQ_PATH_MAX], tmp[MQ_PATH_MAX], final[MQ_PATH_MAX];
	char pdir[MQ_PATH_MAX];
	uint32_t id;
	int rc;

	if (!db)
		return mq_err(MQLOG_EINVAL, "topic create: db is NULL");
	rc = check_name(name, "topic create");
	if (rc)
		return rc;
	if (!cfg) {
		mqlog_topic_config_init(&defaults);
		cfg = &defaults;
	}
	rc = topic_config_validate(cfg);
	if (rc)
		return mq_err_wrap(rc, "topic create %s", name);
	if (db->rdonly)
		return mq_err(MQLOG_ERDONLY,
			      "topic create %s: %s opened "
			      "read-only",
			      name, db->path);

	rc = index_topic_create(db->ix, name, cfg, &id);
	if (rc)
		return rc == MQLOG_EEXIST ?
			       mq_err(rc, "topic create: topic \"%s\"", name) :
			       mq_err_wrap(rc, "topic create %s", name);
	m.id = id;
	m.cfg = *cfg;

	snprintf(topics, sizeof topics, "%s/topics", db->path);
	snprintf(tmp, sizeof tmp, "%s/.creating.%u", topics, id);
	snprintf(final, sizeof final, "%s/%s", topics, name);
	(void)io_rmtree(tmp);
	rc = io_mkdir(tmp, 0755);
	if (rc) {
		mq_err(rc, "%s", tmp);
		goto undo;
	}
	rc = conf_write(tmp, &m);
	if (rc)
		goto undo;
	for (uint32_t i = 0; i < cfg->partitions; i++) {
		snprintf(pdir, sizeof pdir, "%s/%u", tmp, i);
		rc = io_mkdir(pdir, 0755);
		if (rc) {
			mq_err(rc, "%s", pdir);
			goto undo;
		}
	}
	rc = io_fsync_dir(tmp);
	if (rc) {
		mq_err(rc, "%s: fsync", tmp);
		goto undo;
	}
	rc = io_rename(tmp, final);
	if (rc) {
		if (rc == -EEXIST || rc == -ENOTEMPTY)
			mq_err(MQLOG_EEXIST,
			       "topic create: %s exists on disk "
			       "without metadata",
			       final);
		else
			mq_err(rc, "rename %s to %s", tmp, final);
		if (rc == -EEXIST || rc == -ENOTEMPTY)
			rc = MQLOG_EEXIST;
		goto undo;
	}
	rc = io_fsync_dir(topics);
	if (rc)
		return mq_err(rc, "%s: fsync", topics);
	return 0;

undo:
	(void)io_rmtree(tmp);
	(void)index_topic_delete(db->ix, name, id);
	return rc;
}

/* Set the deleted flag of every partition state that exists. */
static void mark_deleted(const char *dir, uint32_t partitions)
{
	char path[MQ_PATH_MAX];

	for (uint32_t i = 0; i < partitions; i++) {
		snprintf(path, sizeof path, "%s/%u/state", dir, i);
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		void *map = mmap(NULL, PSTATE_FILE_SIZE, PROT_READ | PROT_WRITE,
				 MAP_SHARED, fd, 0);
		if (map != MAP_FAILED) {
			struct pstate *st = map;
			MQ_STORE(&st->deleted, 1u);
			state_wake(st);
			munmap(map, PSTATE_FILE_SIZE);
		}
		close(fd);
	}
}

int mqlog_topic_delete(mqlog *db, const char *name)
{
	struct topic_meta m;
	char topics[MQ_PATH_MAX], dir[MQ_PATH_MAX], gone[MQ_PATH_MAX];
	int rc;

	if (!db)
		return mq_err(MQLOG_EINVAL, "topic delete: db is NULL");
	rc = check_name(name, "topic delete");
	if (rc)
		return rc;
	if (db->rdonly)
		return mq_err(MQLOG_ERDONLY, "topic delete %s: read-only",
			      name);
	pthread_mutex_lock(&db->mu);
	for (struct mqlog_topic *t = db->topics; t; t = t->next) {
		if (!strcmp(t->name, name)) {
			pthread_mutex_unlock(&db->mu);
			return mq_err(MQLOG_EBUSY,
				      "topic delete %s: the topic "
				      "is open in this process",
				      name);
		}
	}
	rc = index_topic_get(db->ix, name, &m);
	if (rc) {
		pthread_mutex_unlock(&db->mu);
		return rc == MQLOG_ENOENT ?
			       mq_err(rc, "topic delete: topic \"%s\"", name) :
			       mq_err_wrap(rc, "topic delete %s", name);
	}
	snprintf(topics, sizeof topics, "%s/topics", db->path);
	snprintf(dir, sizeof dir, "%s/%s", topics, name);
	snprintf(gone, sizeof gone, "%s/.deleting.%u", topics, m.id);
	mark_deleted(dir, m.cfg.partitions);
	rc = io_rename(dir, gone);
	if (rc && rc != -ENOENT) {
		pthread_mutex_unlock(&db->mu);
		return mq_err(rc, "topic delete: rename %s", dir);
	}
	if (!rc) {
		rc = io_fsync_dir(topics);
		if (rc) {
			pthread_mutex_unlock(&db->mu);
			return mq_err(rc, "topic delete: fsync %s", topics);
		}
	}
	/* From here the topic is gone for everyone; what remains is cleanup
	 * that the next first-opener redoes if we crash. */
	rc = index_topic_delete(db->ix, name, m.id);
	pthread_mutex_unlock(&db->mu);
	if (rc)
		return mq_err_wrap(rc, "topic delete %s", name);
	rc = io_rmtree(gone);
	if (rc)
		return mq_err(rc, "topic delete: remove %s", gone);
	return 0;
}

int topic_names(mqlog *db, const char *topic, char ***names, size_t *count)
{
	char **v;

	if (!topic)
		return mqlog_topic_list(db, names, count);
	v = malloc(sizeof *v);
	if (!v || !(v[0] = strdup(topic))) {
		free(v);
		return mq_err(MQLOG_ENOMEM, "topic %s", topic);
	}
	*names = v;
	*count = 1;
	return 0;
}

int mqlog_topic_list(mqlog *db, char ***names, size_t *count)
{
	if (!db || !names || !count)
		return mq_err(MQLOG_EINVAL, "topic list: NULL argument");
	return index_topic_list(db->ix, names, count);
}

/* ======================================================================== */
/* Open handles                                                             */
/* ======================================================================== */

int mqlog_topic_open(mqlog *db, const char *name, mqlog_topic **out)
{
	struct mqlog_topic *t;
	struct stat st;
	int rc;

	if (!db || !out)
		return mq_err(MQLOG_EINVAL, "topic open: NULL argument");
	rc = check_name(name, "topic open");
	if (rc)
		return rc;
	pthread_mutex_lock(&db->mu);
	for (t = db->topics; t; t = t->next) {
		if (!strcmp(t->name, name)) {
			t->refs++;
			pthread_mutex_unlock(&db->mu);
			*out = t;
			return 0;
		}
	}
	t = calloc(1, sizeof *t);
	if (!t) {
		rc = mq_err(MQLOG_ENOMEM, "topic open %s", name);
		goto fail;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->db = db;
	t->refs = 1;
	rc = index_topic_get(db->ix, name, &t->meta);
	if (rc) {
		if (rc == MQLOG_ENOENT)
			mq_err(rc, "topic \"%s\" in %s", name, db->path);
		else
			mq_err_wrap(rc, "topic open %s", name);
		goto fail;
	}
	t->name = strdup(name);
	if (!t->name || asprintf(&t->dir, "%s/topics/%s", db->path, name) < 0) {
		t->dir = NULL;
		rc = mq_err(MQLOG_ENOMEM, "topic open %s", name);
		goto fail;
	}
	if (stat(t->dir, &st) != 0) {
		rc = mq_err(errno == ENOENT ? MQLOG_ENOENT : -errno,
			    "topic open: %s (metadata without a directory)",
			    t->dir);
		goto fail;
	}
	t->parts = calloc(t->meta.cfg.partitions, sizeof *t->parts);
	if (!t->parts) {
		rc = mq_err(MQLOG_ENOMEM, "topic open %s", name);
		goto fail;
	}
	t->next = db->topics;
	db->topics = t;
	pthread_mutex_unlock(&db->mu);
	*out = t;
	return 0;
fail:
	pthread_mutex_unlock(&db->mu);
	if (t) {
		pthread_mutex_destroy(&t->mu);
		free(t->name);
		free(t->dir);
		free(t);
	}
	return rc;
}

void mqlog_topic_close(mqlog_topic *t)
{
	struct mqlog *db;
	struct mqlog_topic **pp;

	if (!t)
		return;
	db = t->db;
	pthread_mutex_lock(&db->mu);
	if (--t->refs > 0) {
		pthread_mutex_unlock(&db->mu);
		return;
	}
	for (pp = &db->topics; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	pthread_mutex_unlock(&db->mu);
	for (uint32_t i = 0; i < t->meta.cfg.partitions; i++)
		partition_close(t->parts[i]);
	pthread_mutex_destroy(&t->mu);
	free(t->parts);
	free(t->name);
	free(t->dir);
	free(t);
}

void mqlog_topic_config_get(const mqlog_topic *t, mqlog_topic_config *cfg)
{
	*cfg = t->meta.cfg;
}

const char *mqlog_topic_name(const mqlog_topic *t)
{
	return t->name;
}

uint32_t mqlog_topic_partitions(const mqlog_topic *t)
{
	return t->meta.cfg.partitions;
}

int topic_partition(struct mqlog_topic *t, uint32_t id, struct partition **out)
{
	struct partition *p;
	int rc = 0;

	if (id >= t->meta.cfg.partitions)
		return mq_err(MQLOG_EINVAL,
			      "%s: partition %u out of range "
			      "(topic has %u)",
			      t->name, id, t->meta.cfg.partitions);
	p = __atomic_load_n(&t->parts[id], __ATOMIC_ACQUIRE);
	if (MQ_LIKELY(p != NULL)) {
		*out = p;
		return 0;
	}
	pthread_mutex_lock(&t->mu);
	p = t->parts[id];
	if (!p) {
		rc = partition_open(t, id, &p);
		if (!rc)
			__atomic_store_n(&t->parts[id], p, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&t->mu);
	if (!rc)
		*out = p;
	return rc;
}

/* ======================================================================== */
/* Entry points routed to partitions                                        */
/* ======================================================================== */

int mqlog_append(mqlog_topic *t, uint32_t partition, const mqlog_msg *msgs,
		 size_t count, int sync, uint64_t *base_offset)
{
	struct partition *p = NULL;
	int rc;

	if (!t)
		return mq_err(MQLOG_EINVAL, "append: topic is NULL");
	if (!msgs || count == 0)
		return mq_err(MQLOG_EINVAL, "append %s/%u: no records", t->name,
			      partition);
	rc = topic_partition(t, partition, &p);
	if (rc)
		return rc;
	return partition_append(p, msgs, count, sync, base_offset);
}

int mqlog_topic_sync(mqlog_topic *t)
{
	int rc = 0;

	if (!t)
		return mq_err(MQLOG_EINVAL, "sync: topic is NULL");
	for (uint32_t i = 0; i < t->meta.cfg.partitions; i++) {
		struct partition *p =
			__atomic_load_n(&t->parts[i], __ATOMIC_ACQUIRE);
		if (!p)
			continue;
		int r = partition_sync(p);
		if (r && !rc)
			rc = r;
	}
	return rc;
}

int mqlog_partition_stat(mqlog_topic *t, uint32_t partition,
			 mqlog_partition_info *info)
{
	struct partition *p = NULL;
	int rc;

	if (!t || !info)
		return mq_err(MQLOG_EINVAL, "partition info: NULL argument");
	rc = topic_partition(t, partition, &p);
	if (rc)
		return rc;
	partition_info_fill(p, info);
	return 0;
}
