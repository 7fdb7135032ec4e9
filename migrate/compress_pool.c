/* Compressor threads (compress_pool.h). */
#include "migrate/compress_pool.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv/clock.h"
#include "hv/log.h"

static void *worker(void *arg)
{
	struct compress_job *j = arg;
	struct compress_pool *p = j->pool;

	pthread_setname_np(pthread_self(), "compress");
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (j->state != JOB_BUSY && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop)
			break;
		pthread_mutex_unlock(&p->lock);
		uint64_t t = clock_now_ns();
		memset(&j->enc.stats, 0, sizeof(j->enc.stats));
		j->result = page_codec_encode(&j->enc, j->gfns, j->ptrs, j->n, j->codec, j->stable);
		j->encode_ns = clock_now_ns() - t;
		pthread_mutex_lock(&p->lock);
		j->state = JOB_DONE;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int compress_pool_start(struct compress_pool *p, int n)
{
	memset(p, 0, sizeof(*p));
	if (n < 1 || n > COMPRESS_POOL_MAX) {
		hv_error("--compress-threads %d: use 1 to %d", n, COMPRESS_POOL_MAX);
		return -1;
	}
	p->jobs = calloc((size_t)n, sizeof(*p->jobs));
	if (!p->jobs) {
		hv_error("out of memory for compressor threads");
		return -1;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	for (int i = 0; i < n; i++) {
		struct compress_job *j = &p->jobs[i];
		j->pool = p;
		if (page_codec_enc_init(&j->enc) < 0 || pthread_create(&j->thread, NULL, worker, j) != 0) {
			page_codec_enc_fini(&j->enc);
			hv_error("cannot start compressor thread %d", i + 1);
			compress_pool_stop(p);
			return -1;
		}
		p->n++;
	}
	return 0;
}

void compress_pool_stop(struct compress_pool *p)
{
	if (!p->jobs)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->n; i++) {
		pthread_join(p->jobs[i].thread, NULL);
		page_codec_enc_fini(&p->jobs[i].enc);
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->jobs);
	p->jobs = NULL;
	p->n = 0;
}

bool compress_pool_submit(struct compress_pool *p, const uint64_t *gfns, const uint8_t *const *ptrs,
			  unsigned n, enum page_codec_compress codec, bool stable)
{
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < p->n; i++) {
		struct compress_job *j = &p->jobs[i];
		if (j->state != JOB_FREE)
			continue;
		memcpy(j->gfns, gfns, n * sizeof(*gfns));
		memcpy(j->ptrs, ptrs, n * sizeof(*ptrs));
		j->n = n;
		j->codec = codec;
		j->stable = stable;
		j->state = JOB_BUSY;
		p->busy++;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		return true;
	}
	pthread_mutex_unlock(&p->lock);
	return false;
}

struct compress_job *compress_pool_done(struct compress_pool *p, bool wait)
{
	struct compress_job *found = NULL;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		for (int i = 0; i < p->n && !found; i++)
			if (p->jobs[i].state == JOB_DONE)
				found = &p->jobs[i];
		if (found || !wait || p->busy == 0)
			break;
		pthread_cond_wait(&p->cond, &p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return found;
}

void compress_pool_release(struct compress_pool *p, struct compress_job *j)
{
	pthread_mutex_lock(&p->lock);
	j->state = JOB_FREE;
	p->busy--;
	pthread_mutex_unlock(&p->lock);
}

int compress_pool_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN) - 1;

	return n < 1 ? 1 : n > COMPRESS_POOL_MAX ? COMPRESS_POOL_MAX : (int)n;
}
