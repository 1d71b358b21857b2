/*
 * reader.c - zero-copy cursors over one partition.
 *
 * A reader maps one segment at a time read-only and hands out records as
 * pointers into the mapping.  It never takes a lock: the published end comes
 * from the shared state's sequence lock, and only bytes below it are read.
 * Every batch is validated (magic, length, header checksum, offset
 * continuity, body checksum) before the first of its records is returned;
 * a batch that fails stops the reader in front of it with MQLOG_ECORRUPT.
 * Batches wholly before the wanted offset are skipped on their header alone.
 *
 * A reader of a writable directory holds a pin slot in the partition's
 * shared state with the base of the segment it has mapped, updated only
 * when it changes segment; retention does not unlink that segment or any
 * later one while the pin stays (retention.c).
 */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct mqlog_reader {
	struct mqlog_topic *t;	/* topic (the reader holds a reference) */
	struct partition *p;	/* partition */
	uint64_t next;		/* offset of the next record to return */
	uint64_t seg;		/* base of the mapped segment */
	bool have_seg;		/* a segment is mapped */
	struct segmap map;	/* its mapping */
	char path[MQ_PATH_MAX]; /* its path, for messages */
	uint64_t pos;		/* byte position of the next batch to look at */
	uint64_t expect;	/* base offset the batch at pos must have */
	bool in_batch;		/* iterating a validated batch */
	struct batch_hdr bh;	/* that batch */
	struct batch_iter it;	/* its records */
	uint64_t batch_pos;	/* its position */
	uint64_t sealed_size;	/* size of the mapped segment once sealed */
	bool sealed_known;	/* sealed_size is set */
	bool hold;		/* do not leave the mapped segment (read()) */
	bool from_index; /* pos came from the derived index, unverified */
	int pin;	 /* reader pin slot in the shared state, or -1 */
};

static void drop_segment(struct mqlog_reader *r)
{
	if (r->have_seg)
		segmap_close(&r->map);
	r->have_seg = false;
	r->in_batch = false;
}

static int map_segment(struct mqlog_reader *r, uint64_t base)
{
	int rc;

	drop_segment(r);
	/* Pinned before the file is opened: retention either sees the pin
	 * and keeps the file, or unlinked it already and the open fails. */
	state_pin_set(r->p->st, r->pin, base);
	partition_seg_path(r->p, base, r->path);
	rc = segmap_open(&r->map, r->path, r->t->meta.cfg.segment_bytes);
	if (rc) {
		if (rc == -ENOENT)
			return mq_err(MQLOG_ERANGE, "%s: segment removed",
				      r->path);
		return rc;
	}
	r->seg = base;
	r->have_seg = true;
	r->sealed_known = false;
	return 0;
}

/* Position at @offset, which is within [start, end]. */
static int position(struct mqlog_reader *r, uint64_t offset)
{
	struct index_entry e;
	uint64_t seg;
	int rc;

	rc = partition_segment_for(r->p, offset, &seg);
	if (rc)
		return rc;
	if (!r->have_seg || r->seg != seg) {
		rc = map_segment(r, seg);
		if (rc)
			return rc;
	}
	r->pos = 0;
	r->expect = seg;
	r->from_index = false;
	if (index_floor_offset(r->t->db->ix, r->t->meta.id, r->p->id, offset,
			       &e) == 0 &&
	    e.seg_base == seg && e.offset >= seg) {
		/* Derived data: trusted only as a starting point, checked by
		 * the batch validation that follows. */
		r->pos = e.pos;
		r->expect = e.offset;
		r->from_index = true;
	}
	r->next = offset;
	r->in_batch = false;
	return 0;
}

int mqlog_reader_open(mqlog_topic *t, uint32_t partition, mqlog_reader **out)
{
	struct mqlog_reader *r;
	struct partition *p;
	struct pview v;
	int rc;

	if (!t || !out)
		return mq_err(MQLOG_EINVAL, "reader open: NULL argument");
	rc = topic_partition(t, partition, &p);
	if (rc)
		return rc;
	r = calloc(1, sizeof *r);
	if (!r)
		return mq_err(MQLOG_ENOMEM, "reader open %s/%u", t->name,
			      partition);
	r->t = t;
	r->p = p;
	r->map.fd = -1;
	r->pin = -1;
	if (!p->st_private && !t->db->rdonly)
		r->pin = state_pin_claim(p->st);
	state_read_view(p->st, &v);
	rc = position(r, v.start_offset);
	if (rc) {
		mqlog_reader_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

void mqlog_reader_close(mqlog_reader *r)
{
	if (!r)
		return;
	drop_segment(r);
	state_pin_release(r->p->st, r->pin);
	free(r);
}

int mqlog_reader_seek(mqlog_reader *r, uint64_t offset)
{
	struct pview v;

	if (!r)
		return mq_err(MQLOG_EINVAL, "seek: reader is NULL");
	state_read_view(r->p->st, &v);
	if (offset == MQLOG_OFFSET_EARLIEST)
		offset = v.start_offset;
	else if (offset == MQLOG_OFFSET_LATEST)
		offset = v.end_offset;
	if (offset < v.start_offset || offset > v.end_offset)
		return mq_err(MQLOG_ERANGE,
			      "%s/%u: offset %llu outside [%llu, %llu]",
			      r->t->name, r->p->id, (unsigned long long)offset,
			      (unsigned long long)v.start_offset,
			      (unsigned long long)v.end_offset);
	return position(r, offset);
}

uint64_t mqlog_reader_position(const mqlog_reader *r)
{
	return r->next;
}

/* A corrupt batch: report it and stay in front of it. */
static int corrupt(struct mqlog_reader *r, uint64_t pos, const char *why)
{
	r->in_batch = false;
	return mq_err(MQLOG_ECORRUPT, "%s: batch at byte %llu: %s", r->path,
		      (unsigned long long)pos, why);
}

/*
 * Load the next batch that holds r->next into the iterator.  Returns 1,
 * 0 at the log end, or an error.
 */
static int load_batch(struct mqlog_reader *r)
{
	struct pview v;
	const char *why;
	uint64_t limit, next_seg;
	int rc;

	for (;;) {
		state_read_view(r->p->st, &v);
		if (r->next >= v.end_offset)
			return 0;
		if (r->next < v.start_offset)
			return mq_err(MQLOG_ERANGE,
				      "%s/%u: offset %llu was "
				      "removed by retention",
				      r->t->name, r->p->id,
				      (unsigned long long)r->next);
		if (!r->have_seg) {
			rc = position(r, r->next);
			if (rc)
				return rc;
		}
		if (r->seg == v.seg_base) {
			limit = v.seg_end_pos;
		} else if (r->seg > v.seg_base) {
			/* Our segment is newer than the state we read: the
			 * partition was recovered under us.  Start again. */
			if (r->hold)
				return 0;
			drop_segment(r);
			continue;
		} else {
			/* Sealed: its size is final, so ask for it once. */
			if (!r->sealed_known) {
				rc = io_file_size(r->map.fd, &r->sealed_size);
				if (rc)
					return mq_err(rc, "%s: stat", r->path);
				r->sealed_known = true;
			}
			limit = r->sealed_size;
		}
		if (r->pos >= limit && r->from_index) {
			/* An index position past the segment's end: stale. */
			r->from_index = false;
			r->pos = 0;
			r->expect = r->seg;
			continue;
		}
		if (r->pos >= limit) {
			if (r->seg == v.seg_base || r->hold)
				return 0;
			rc = partition_next_segment(r->p, r->seg, &next_seg);
			if (rc == MQLOG_ENOENT)
				return mq_err(
					MQLOG_ECORRUPT,
					"%s: log ends at byte %llu before "
					"offset %llu",
					r->path, (unsigned long long)limit,
					(unsigned long long)r->next);
			if (rc)
				return rc;
			if (next_seg != r->expect)
				return mq_err(MQLOG_ECORRUPT,
					      "%s: ends at offset %llu but the "
					      "next segment starts at %llu",
					      r->path,
					      (unsigned long long)r->expect,
					      (unsigned long long)next_seg);
			rc = map_segment(r, next_seg);
			if (rc)
				return rc;
			r->pos = 0;
			r->expect = next_seg;
			continue;
		}
		if (r->hold && limit > r->map.len)
			return 0; /* a remap would move earlier records */
		rc = segmap_ensure(&r->map, r->path, limit);
		if (rc)
			return rc;
		rc = batch_check_header(r->map.base + r->pos,
					(size_t)(limit - r->pos), &r->bh, &why);
		if (!rc && r->bh.base_offset != r->expect) {
			rc = MQLOG_ECORRUPT;
			why = "base offset does not continue the log";
		}
		if (rc && r->from_index) {
			/* The index is derived and may be stale: the log
			 * decides.  Scan this segment from its start. */
			r->from_index = false;
			r->pos = 0;
			r->expect = r->seg;
			continue;
		}
		if (rc)
			return corrupt(r, r->pos, why);
		r->from_index = false;
		if (r->bh.base_offset + r->bh.record_count <= r->next) {
			/* Wholly before the target: hop over it. */
			r->pos += r->bh.length;
			r->expect += r->bh.record_count;
			continue;
		}
		rc = batch_check_body(r->map.base + r->pos, &r->bh, &why);
		if (rc)
			return corrupt(r, r->pos, why);
		batch_iter_init(&r->it, r->map.base + r->pos, &r->bh);
		r->batch_pos = r->pos;
		r->in_batch = true;
		return 1;
	}
}

int mqlog_reader_next(mqlog_reader *r, mqlog_record *rec)
{
	const char *why;
	int rc;

	if (MQ_UNLIKELY(!r || !rec))
		return mq_err(MQLOG_EINVAL, "reader next: NULL argument");
	for (;;) {
		if (r->in_batch) {
			rc = batch_iter_next(&r->it, rec, &why);
			if (MQ_LIKELY(rc == 1)) {
				if (rec->offset < r->next)
					continue;
				rec->partition = r->p->id;
				r->next = rec->offset + 1;
				return 1;
			}
			if (rc < 0)
				return corrupt(r, r->batch_pos, why);
			/* End of batch. */
			r->in_batch = false;
			r->pos = r->batch_pos + r->bh.length;
			r->expect = r->bh.base_offset + r->bh.record_count;
			if (r->next < r->expect)
				return corrupt(r, r->batch_pos,
					       "fewer records than its count");
		}
		rc = load_batch(r);
		if (rc <= 0)
			return rc;
	}
}

int mqlog_reader_read(mqlog_reader *r, mqlog_record *recs, size_t max,
		      size_t *n)
{
	size_t got = 0;
	int rc;

	if (!r || !n || (!recs && max))
		return mq_err(MQLOG_EINVAL, "reader read: NULL argument");
	*n = 0;
	if (max == 0)
		return 0;
	rc = mqlog_reader_next(r, &recs[0]);
	if (rc <= 0)
		return rc;
	got = 1;
	/* Records of one call stay valid together, so the call ends at a
	 * segment boundary: moving on unmaps the previous segment. */
	r->hold = true;
	while (got < max) {
		rc = mqlog_reader_next(r, &recs[got]);
		if (rc <= 0)
			break;
		got++;
	}
	r->hold = false;
	*n = got;
	/* An error after some records is reported by the next call. */
	return 0;
}

int mqlog_reader_wait(mqlog_reader *r, int timeout_ms)
{
	struct pview v;
	uint64_t deadline = 0;
	bool spun = false;

	if (!r)
		return mq_err(MQLOG_EINVAL, "reader wait: NULL argument");
	if (timeout_ms >= 0)
		deadline = mq_mono_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		uint32_t seen = MQ_LOAD(&r->p->st->wake);
		state_read_view(r->p->st, &v);
		if (v.end_offset > r->next || MQ_LOAD(&r->p->st->deleted))
			return 0;
		int left = -1;
		if (timeout_ms >= 0) {
			uint64_t now = mq_mono_ns();
			if (now >= deadline)
				return MQLOG_ETIMEDOUT;
			left = (int)((deadline - now + 999999u) / 1000000u);
		}
		if (r->p->st_private) {
			/* No live writer to wake us: nothing can arrive. */
			struct timespec ts = { left / 1000,
					       (long)(left % 1000) * 1000000L };
			if (left < 0)
				ts.tv_sec = 3600;
			nanosleep(&ts, NULL);
			continue;
		}
		/* Watch before sleeping: a wake-up costs tens of µs at the
		 * tail, a record seen while spinning about one. */
		uint32_t *w = &r->p->st->wake;
		uint64_t spin = r->p->t->db->spin_ns;
		if (timeout_ms >= 0 && spin > (uint64_t)left * 1000000u)
			spin = (uint64_t)left * 1000000u;
		if (!spun && state_spin(&w, &seen, 1, spin)) {
			spun = true;
			continue;
		}
		spun = true;
		state_wait(r->p->st, seen, left);
	}
}

/* ======================================================================== */
/* Time lookup                                                              */
/* ======================================================================== */

int mqlog_reader_seek_time(mqlog_reader *r, int64_t ts)
{
	struct time_entry te;
	struct pview v;
	mqlog_record rec;
	uint64_t from;
	int rc;

	if (!r)
		return mq_err(MQLOG_EINVAL, "seek time: reader is NULL");
	state_read_view(r->p->st, &v);
	from = v.start_offset;
	/* Every record before te.offset has a timestamp < te.ts < ts. */
	if (index_floor_time(r->t->db->ix, r->t->meta.id, r->p->id, ts, &te) ==
		    0 &&
	    te.offset > from && te.offset <= v.end_offset)
		from = te.offset;
	rc = position(r, from);
	if (rc)
		return rc;
	/* Scan forward batch by batch, hopping batches whose max timestamp
	 * is below the target, then record by record. */
	for (;;) {
		if (!r->in_batch) {
			rc = load_batch(r);
			if (rc < 0)
				return rc;
			if (rc == 0)
				return 0; /* none: positioned at the end */
			if (r->bh.max_timestamp < ts) {
				r->in_batch = false;
				r->pos = r->batch_pos + r->bh.length;
				r->expect =
					r->bh.base_offset + r->bh.record_count;
				r->next = r->expect;
				continue;
			}
		}
		rc = mqlog_reader_next(r, &rec);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return 0;
		if (rec.timestamp >= ts) {
			/* Step back so that this record is read next. */
			return position(r, rec.offset);
		}
	}
}
