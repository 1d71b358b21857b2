/*
 * plmodel.h - the power-loss model shared by test_powerloss.c and
 * test_faults.c (header only; every function is static).
 *
 * It replays the io layer's record (io_record_*) on a model file system
 * and builds, in a real directory, a state a power cut could leave: which
 * writes reached the disk (all, none, a prefix, one torn at a sector, one
 * missing, or their extents as zeros) and which directory entries did
 * (synced ones always; the others all, none, a prefix, or all but one).
 * test_powerloss.c documents the model.
 */
#ifndef MQLOG_TEST_PLMODEL_H
#define MQLOG_TEST_PLMODEL_H

#include <limits.h>

#include "battery.h"
#include "internal.h"

struct workload; /* the test's own description of what ran */

/* A copy of meta/data.mdb taken right after a note. */
struct snap {
	size_t at;	       /* index of the note in the op log */
	uint8_t *data;	       /* file contents (NULL: no file yet) */
	size_t len;	       /* bytes */
	uint64_t committed[4]; /* group offsets it holds (GROUP_NONE: none) */
};

#define GROUP_NONE UINT64_MAX

/* Everything a run leaves for the state builder. */
struct run {
	const struct workload *w; /* what ran (the test's) */
	char root[4096];    /* recorded root: the data directory's parent */
	size_t nops;	    /* entries in the op log */
	struct snap *snaps; /* one per note */
	size_t nsnaps;
	uint64_t committed[4]; /* the workload's last durable group commit */
};

/* ======================================================================== */
/* The model file system                                                    */
/* ======================================================================== */

#define MAXNODES 1024
#define MAXENTS	 64
#define MAXFD	 1024

struct ent {
	char name[64]; /* entry name */
	int node;      /* node it names */
};

struct node {
	bool used;		  /* allocated */
	bool dir;		  /* a directory */
	struct ent ents[MAXENTS]; /* directory entries (volatile) */
	int nents;
	size_t *dops; /* data ops (log indexes), in order */
	size_t ndops, capd;
	size_t nsynced; /* data ops covered by the last fdatasync */
};

enum dkind {
	D_ADD,
	D_DEL,
	D_MOVE
};

struct dirop {
	size_t at; /* log index; SIZE_MAX: implicit (always kept) */
	enum dkind kind;
	int pnode; /* parent (source for a move) */
	char name[64];
	int pnode2; /* move target parent */
	char name2[64];
	int node;    /* node added or moved */
	bool synced; /* its directory (both, for a move) was fsynced */
};

struct model {
	struct node nodes[MAXNODES];
	int nnodes;
	int fds[MAXFD]; /* fd -> node, -1 */
	struct dirop *dops;
	size_t ndops, capd;
	size_t *dsyncs; /* (at << 16 | node) of successful dir fsyncs */
	size_t ndsyncs, capds;
	size_t implicit; /* directories not created through the io layer */
};

static void model_free(struct model *m)
{
	for (int i = 0; i < m->nnodes; i++)
		free(m->nodes[i].dops);
	free(m->dops);
	free(m->dsyncs);
}

static int new_node(struct model *m, bool dir)
{
	ck_assert_int_lt(m->nnodes, MAXNODES);
	struct node *n = &m->nodes[m->nnodes];
	memset(n, 0, sizeof *n);
	n->used = true;
	n->dir = dir;
	return m->nnodes++;
}

static int ent_find(const struct node *d, const char *name)
{
	for (int i = 0; i < d->nents; i++)
		if (!strcmp(d->ents[i].name, name))
			return i;
	return -1;
}

static void ent_set(struct node *d, const char *name, int node)
{
	int i = ent_find(d, name);
	if (i < 0) {
		ck_assert_int_lt(d->nents, MAXENTS);
		i = d->nents++;
		snprintf(d->ents[i].name, sizeof d->ents[i].name, "%s", name);
	}
	d->ents[i].node = node;
}

static void ent_del(struct node *d, const char *name)
{
	int i = ent_find(d, name);
	if (i >= 0)
		d->ents[i] = d->ents[--d->nents];
}

static void add_dirop(struct model *m, struct dirop op)
{
	if (m->ndops == m->capd) {
		m->capd = m->capd ? m->capd * 2 : 256;
		m->dops = realloc(m->dops, m->capd * sizeof *m->dops);
		ck_assert_ptr_nonnull(m->dops);
	}
	m->dops[m->ndops++] = op;
}

static void add_dop(struct node *n, size_t at)
{
	if (n->ndops == n->capd) {
		n->capd = n->capd ? n->capd * 2 : 16;
		n->dops = realloc(n->dops, n->capd * sizeof *n->dops);
		ck_assert_ptr_nonnull(n->dops);
	}
	n->dops[n->ndops++] = at;
}

/*
 * Resolve @rel (relative to the root, node 0) to its parent directory and
 * last name.  Missing parents are made implicit: created outside the io
 * layer, so the model cannot know when they became durable and assumes
 * they always were.  Returns the parent, or -1 when a component is a file.
 */
static int resolve_parent(struct model *m, const char *rel, char last[64])
{
	char buf[4096], *save = NULL, *tok, *next;
	int cur = 0;

	snprintf(buf, sizeof buf, "%s", rel);
	tok = strtok_r(buf, "/", &save);
	if (!tok)
		return -1;
	while ((next = strtok_r(NULL, "/", &save)) != NULL) {
		int i = ent_find(&m->nodes[cur], tok);
		if (i < 0) {
			int n = new_node(m, true);
			struct dirop op = { SIZE_MAX, D_ADD, cur, "",
					    -1,	      "",    n,	  true };
			snprintf(op.name, sizeof op.name, "%s", tok);
			ent_set(&m->nodes[cur], tok, n);
			add_dirop(m, op);
			m->implicit++;
			cur = n;
		} else {
			cur = m->nodes[cur].ents[i].node;
			if (!m->nodes[cur].dir)
				return -1;
		}
		tok = next;
	}
	snprintf(last, 64, "%s", tok);
	return cur;
}

/* Path under the recorded root, or NULL for a path outside it (or meta/,
 * which LMDB writes). */
static const char *rel_of(const struct run *r, const char *path)
{
	size_t n = strlen(r->root);
	if (!path || strncmp(path, r->root, n) != 0 || path[n] != '/')
		return NULL;
	if (strstr(path + n, "/meta/") ||
	    !strcmp(path + strlen(path) - 5, "/meta"))
		return NULL;
	return path + n + 1;
}

/* Replay log entries [0, upto) into a fresh model. */
static void replay(const struct run *r, size_t upto, struct model *m)
{
	memset(m, 0, sizeof *m);
	new_node(m, true); /* the root: durable, it existed before */
	for (int i = 0; i < MAXFD; i++)
		m->fds[i] = -1;
	for (size_t at = 0; at < upto; at++) {
		const struct io_rec *e = io_record_get(at);
		const char *rel;
		char name[64], name2[64];
		int par, par2, i;

		switch (e->op) {
		case IO_REC_OPEN:
			if (e->rc < 0 || !(rel = rel_of(r, e->path)))
				break;
			par = resolve_parent(m, rel, name);
			ck_assert_int_ge(par, 0);
			i = ent_find(&m->nodes[par], name);
			int node;
			if (i < 0) {
				ck_assert_msg(e->flags & O_CREAT,
					      "open of a missing file %s", rel);
				node = new_node(m, false);
				ent_set(&m->nodes[par], name, node);
				struct dirop op = { at, D_ADD, par,  "",
						    -1, "",    node, false };
				snprintf(op.name, sizeof op.name, "%s", name);
				add_dirop(m, op);
			} else {
				node = m->nodes[par].ents[i].node;
				if (e->flags & O_TRUNC)
					add_dop(&m->nodes[node], at);
			}
			ck_assert_int_lt(e->rc, MAXFD);
			if (!m->nodes[node].dir)
				m->fds[e->rc] = node;
			break;
		case IO_REC_CLOSE:
			if (e->fd >= 0 && e->fd < MAXFD)
				m->fds[e->fd] = -1;
			break;
		case IO_REC_WRITE:
			if (e->fd >= 0 && e->fd < MAXFD && m->fds[e->fd] >= 0 &&
			    e->len > 0)
				add_dop(&m->nodes[m->fds[e->fd]], at);
			break;
		case IO_REC_TRUNCATE:
			if (e->rc == 0 && e->fd >= 0 && e->fd < MAXFD &&
			    m->fds[e->fd] >= 0)
				add_dop(&m->nodes[m->fds[e->fd]], at);
			break;
		case IO_REC_SYNC:
			if (e->rc == 0 && e->fd >= 0 && e->fd < MAXFD &&
			    m->fds[e->fd] >= 0) {
				struct node *n = &m->nodes[m->fds[e->fd]];
				n->nsynced = n->ndops;
			}
			break;
		case IO_REC_DIRSYNC: {
			int synced_node = -1;
			if (e->rc < 0)
				break;
			if (e->path && !strcmp(e->path, r->root)) {
				synced_node = 0;
			} else {
				if (!(rel = rel_of(r, e->path)))
					break;
				par = resolve_parent(m, rel, name);
				if (par < 0 ||
				    (i = ent_find(&m->nodes[par], name)) < 0)
					break;
				synced_node = m->nodes[par].ents[i].node;
			}
			if (m->ndsyncs == m->capds) {
				m->capds = m->capds ? m->capds * 2 : 256;
				m->dsyncs =
					realloc(m->dsyncs,
						m->capds * sizeof *m->dsyncs);
				ck_assert_ptr_nonnull(m->dsyncs);
			}
			m->dsyncs[m->ndsyncs++] = at << 16 |
						  (size_t)synced_node;
			break;
		}
		case IO_REC_MKDIR:
			if (e->rc < 0 || !(rel = rel_of(r, e->path)))
				break;
			par = resolve_parent(m, rel, name);
			ck_assert_int_ge(par, 0);
			{
				int n = new_node(m, true);
				struct dirop op = { at, D_ADD, par, "",
						    -1, "",    n,   false };
				snprintf(op.name, sizeof op.name, "%s", name);
				ent_set(&m->nodes[par], name, n);
				add_dirop(m, op);
			}
			break;
		case IO_REC_UNLINK:
		case IO_REC_RMTREE:
			if (e->rc < 0 || !(rel = rel_of(r, e->path)))
				break;
			par = resolve_parent(m, rel, name);
			if (par < 0 || (i = ent_find(&m->nodes[par], name)) < 0)
				break;
			{
				struct dirop op = { at,
						    D_DEL,
						    par,
						    "",
						    -1,
						    "",
						    m->nodes[par].ents[i].node,
						    false };
				snprintf(op.name, sizeof op.name, "%s", name);
				ent_del(&m->nodes[par], name);
				add_dirop(m, op);
			}
			break;
		case IO_REC_RENAME:
			if (e->rc < 0 || !(rel = rel_of(r, e->path)))
				break;
			par = resolve_parent(m, rel, name);
			const char *rel2 = rel_of(r, e->path2);
			ck_assert_ptr_nonnull(rel2);
			par2 = resolve_parent(m, rel2, name2);
			ck_assert(par >= 0 && par2 >= 0);
			i = ent_find(&m->nodes[par], name);
			ck_assert_int_ge(i, 0);
			{
				struct dirop op = { at,
						    D_MOVE,
						    par,
						    "",
						    par2,
						    "",
						    m->nodes[par].ents[i].node,
						    false };
				snprintf(op.name, sizeof op.name, "%s", name);
				snprintf(op.name2, sizeof op.name2, "%s",
					 name2);
				ent_del(&m->nodes[par], name);
				ent_set(&m->nodes[par2], name2, op.node);
				add_dirop(m, op);
			}
			break;
		case IO_REC_NOTE:
			break;
		}
	}
	/* A directory operation is durable once its directory was fsynced
	 * after it (both directories, for a rename). */
	for (size_t k = 0; k < m->ndops; k++) {
		struct dirop *op = &m->dops[k];
		bool a = op->at == SIZE_MAX, b = op->kind != D_MOVE;
		for (size_t s = 0; s < m->ndsyncs && !(a && b); s++) {
			size_t at = m->dsyncs[s] >> 16;
			int node = (int)(m->dsyncs[s] & 0xFFFF);
			if (at <= op->at && op->at != SIZE_MAX)
				continue;
			if (node == op->pnode)
				a = true;
			if (op->kind == D_MOVE && node == op->pnode2)
				b = true;
		}
		if (op->kind == D_MOVE && op->pnode == op->pnode2)
			b = a;
		op->synced = a && b;
	}
}

/* ======================================================================== */
/* Building one crash state                                                 */
/* ======================================================================== */

enum dirmode {
	DIRS_ALL,
	DIRS_SYNCED,
	DIRS_PREFIX,
	DIRS_ALL_BUT
};
enum datamode {
	DATA_ALL,
	DATA_NONE,
	DATA_PREFIX,
	DATA_TORN_HEAD,
	DATA_TORN_TAIL,
	DATA_ZERO,
	DATA_ALL_BUT
};

struct variant {
	enum dirmode dirs;
	size_t dir_arg; /* PREFIX: unsynced ops kept; ALL_BUT: which */
	enum datamode data;
	size_t data_arg;   /* PREFIX / TORN: pending ops kept whole */
	uint64_t cut;	   /* TORN: sector boundary (absolute file offset) */
	int meta;	   /* snapshot index, or -1: no meta/ */
	const char *label; /* for messages */
};

/* A file's bytes under construction. */
struct buf {
	uint8_t *p;
	uint64_t size, cap;
};

static void buf_size(struct buf *b, uint64_t size)
{
	if (size > b->cap) {
		uint64_t ncap = b->cap ? b->cap : 4096;
		while (ncap < size)
			ncap *= 2;
		b->p = realloc(b->p, (size_t)ncap);
		ck_assert_ptr_nonnull(b->p);
		memset(b->p + b->cap, 0, (size_t)(ncap - b->cap));
		b->cap = ncap;
	}
	if (size < b->size)
		memset(b->p + size, 0, (size_t)(b->size - size));
	b->size = size;
}

/* Apply data op @at to @b: all of it, or only [lo, hi) of a write's bytes
 * (absolute offsets), or its extent as zeros. */
static void apply_dop(struct buf *b, size_t at, uint64_t lo, uint64_t hi,
		      bool zero)
{
	const struct io_rec *e = io_record_get(at);

	if (e->op == IO_REC_OPEN) { /* O_TRUNC */
		buf_size(b, 0);
		return;
	}
	if (e->op == IO_REC_TRUNCATE) {
		buf_size(b, e->len);
		return;
	}
	uint64_t s = e->off, t = e->off + e->len;
	if (t > b->size)
		buf_size(b, t);
	if (lo < s)
		lo = s;
	if (hi > t)
		hi = t;
	if (zero || lo >= hi)
		return;
	memcpy(b->p + lo, e->data + (lo - s), (size_t)(hi - lo));
}

/* Pending data ops of a model, in log order: (node, index in its dops). */
struct pend {
	int node;
	size_t k;
	size_t at;
};

static int pend_cmp(const void *a, const void *b)
{
	const struct pend *x = a, *y = b;
	return x->at < y->at ? -1 : x->at > y->at;
}

static size_t collect_pending(const struct model *m, struct pend *out,
			      size_t max)
{
	size_t n = 0;
	for (int i = 0; i < m->nnodes; i++)
		for (size_t k = m->nodes[i].nsynced; k < m->nodes[i].ndops; k++)
			if (n < max)
				out[n++] = (struct pend){ i, k,
							  m->nodes[i].dops[k] };
	qsort(out, n, sizeof *out, pend_cmp);
	return n;
}

/* The bytes of file @node under variant @v (pending ops in @pend). */
static void file_bytes(const struct model *m, int node, const struct variant *v,
		       const struct pend *pend, size_t npend, struct buf *b)
{
	const struct node *n = &m->nodes[node];

	buf_size(b, 0);
	for (size_t k = 0; k < n->nsynced; k++)
		apply_dop(b, n->dops[k], 0, UINT64_MAX, false);
	for (size_t g = 0; g < npend; g++) {
		if (pend[g].node != node)
			continue;
		size_t at = pend[g].at;
		switch (v->data) {
		case DATA_ALL:
			apply_dop(b, at, 0, UINT64_MAX, false);
			break;
		case DATA_NONE:
			break;
		case DATA_PREFIX:
			if (g < v->data_arg)
				apply_dop(b, at, 0, UINT64_MAX, false);
			break;
		case DATA_TORN_HEAD:
		case DATA_TORN_TAIL:
			if (g < v->data_arg) {
				apply_dop(b, at, 0, UINT64_MAX, false);
			} else if (g == v->data_arg) {
				/* The sectors before (head) or after (tail)
				 * the cut reached the disk; the size did. */
				if (v->data == DATA_TORN_HEAD)
					apply_dop(b, at, 0, v->cut, false);
				else
					apply_dop(b, at, v->cut, UINT64_MAX,
						  false);
			}
			break;
		case DATA_ZERO:
			apply_dop(b, at, 0, UINT64_MAX, true);
			break;
		case DATA_ALL_BUT:
			/* Pages reach the disk in any order: one write's did
			 * not, later ones' did (the size covers them all). */
			apply_dop(b, at, 0, UINT64_MAX, g == v->data_arg);
			break;
		}
	}
}

/* Which directory ops survive under @v. */
static bool dirop_kept(const struct model *m, size_t k, const struct variant *v)
{
	const struct dirop *op = &m->dops[k];
	size_t rank = 0;

	if (op->synced)
		return true;
	for (size_t j = 0; j < k; j++)
		if (!m->dops[j].synced)
			rank++;
	switch (v->dirs) {
	case DIRS_ALL:
		return true;
	case DIRS_SYNCED:
		return false;
	case DIRS_PREFIX:
		return rank < v->dir_arg;
	case DIRS_ALL_BUT:
		return rank != v->dir_arg;
	}
	return true;
}

static void put_file(const char *path, const uint8_t *p, uint64_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	for (uint64_t done = 0; done < n;) {
		ssize_t k = write(fd, p + done, (size_t)(n - done));
		ck_assert_int_gt(k, 0);
		done += (uint64_t)k;
	}
	close(fd);
}

/* Write the tree under @dir (a directory node) into @path; hash it. */
struct tree_ents {
	struct ent e[MAXENTS];
	int n;
};

static int ent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ent *)a)->name,
		      ((const struct ent *)b)->name);
}

static uint64_t materialize(const struct model *m, const struct tree_ents *dirs,
			    int dir, const char *path, const struct variant *v,
			    const struct pend *pend, size_t npend,
			    struct buf *b, uint64_t h, int depth)
{
	struct tree_ents te = dirs[dir];
	qsort(te.e, (size_t)te.n, sizeof te.e[0], ent_cmp);
	ck_assert_int_lt(depth, 16);
	for (int i = 0; i < te.n; i++) {
		char sub[4096];
		int node = te.e[i].node;
		snprintf(sub, sizeof sub, "%s/%s", path, te.e[i].name);
		h = bt_fnv(te.e[i].name, strlen(te.e[i].name) + 1, h);
		if (m->nodes[node].dir) {
			ck_assert_int_eq(mkdir(sub, 0755), 0);
			h = materialize(m, dirs, node, sub, v, pend, npend, b,
					bt_fnv("/", 1, h), depth + 1);
			h = bt_fnv("..", 2, h);
		} else {
			file_bytes(m, node, v, pend, npend, b);
			put_file(sub, b->p, b->size);
			h = bt_fnv(&b->size, sizeof b->size, h);
			h = bt_fnv(b->p, (size_t)b->size, h);
		}
	}
	return h;
}

/*
 * Build the state of variant @v of model @m in @dst (which must not
 * exist).  Returns a hash of the whole state, to skip duplicates.
 */
static uint64_t build_state(const struct run *r, const struct model *m,
			    const struct variant *v, const char *dst)
{
	static struct tree_ents dirs[MAXNODES];
	struct pend pend[512];
	size_t npend = collect_pending(m, pend, 512);
	struct buf b = { 0 };
	uint64_t h;

	for (int i = 0; i < m->nnodes; i++)
		dirs[i].n = 0;
	for (size_t k = 0; k < m->ndops; k++) {
		const struct dirop *op = &m->dops[k];
		if (!dirop_kept(m, k, v))
			continue;
		struct tree_ents *p = &dirs[op->pnode];
		int j;
		for (j = 0; j < p->n && strcmp(p->e[j].name, op->name); j++)
			;
		switch (op->kind) {
		case D_ADD:
			if (j == p->n) {
				ck_assert_int_lt(p->n, MAXENTS);
				p->n++;
			}
			snprintf(p->e[j].name, sizeof p->e[j].name, "%s",
				 op->name);
			p->e[j].node = op->node;
			break;
		case D_DEL:
			if (j < p->n)
				p->e[j] = p->e[--p->n];
			break;
		case D_MOVE: {
			if (j < p->n)
				p->e[j] = p->e[--p->n];
			struct tree_ents *q = &dirs[op->pnode2];
			for (j = 0; j < q->n && strcmp(q->e[j].name, op->name2);
			     j++)
				;
			if (j == q->n) {
				ck_assert_int_lt(q->n, MAXENTS);
				q->n++;
			}
			snprintf(q->e[j].name, sizeof q->e[j].name, "%s",
				 op->name2);
			q->e[j].node = op->node;
			break;
		}
		}
	}
	ck_assert_int_eq(mkdir(dst, 0755), 0);
	h = materialize(m, dirs, 0, dst, v, pend, npend, &b, 0, 0);
	free(b.p);

	/* meta/ beside the segments, from the chosen copy. */
	char db[4200], meta[4300];
	struct stat st;
	snprintf(db, sizeof db, "%s/db", dst);
	h = bt_fnv(&v->meta, sizeof v->meta, h);
	if (v->meta >= 0 && r->snaps[v->meta].data && stat(db, &st) == 0) {
		snprintf(meta, sizeof meta, "%s/meta", db);
		ck_assert_int_eq(mkdir(meta, 0755), 0);
		snprintf(meta, sizeof meta, "%s/meta/data.mdb", db);
		put_file(meta, r->snaps[v->meta].data, r->snaps[v->meta].len);
	}
	return h;
}

#endif
