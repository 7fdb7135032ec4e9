/* The device fuzz targets create the devices' I/O threads afresh for every input (1 to 5 of
 * them), and clang 14's ASan keeps something of every thread it has ever seen (its thread
 * registry never reuses an entry, and each exit fills the quarantine): some hundred bytes a
 * thread, gigabytes over ten million inputs. So these targets link with
 * -Wl,--wrap=pthread_create,--wrap=pthread_join, and the threads the code under test
 * creates run, unchanged, as jobs on a pool of OS threads that are kept and reused: one
 * worker per thread alive at the same time. Thread attributes are not supported (no caller
 * uses them); a job sees the thread-local variables its worker's last job left. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int __wrap_pthread_join(pthread_t t, void **ret);

struct worker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	void *(*fn)(void *); /* the job, NULL while there is none */
	void *arg, *ret;
	bool done;           /* the job returned: joinable */
	struct worker *next; /* on the idle list */
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct worker *idle;

static void *worker_main(void *p)
{
	struct worker *w = p;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->fn)
			pthread_cond_wait(&w->cond, &w->lock);
		void *(*fn)(void *) = w->fn;
		pthread_mutex_unlock(&w->lock);
		void *ret = fn(w->arg);
		pthread_mutex_lock(&w->lock);
		w->ret = ret;
		w->fn = NULL;
		w->done = true;
		pthread_cond_broadcast(&w->cond);
	}
	return NULL;
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	if (attr)
		abort();
	pthread_mutex_lock(&pool_lock);
	struct worker *w = idle;
	if (w)
		idle = w->next;
	pthread_mutex_unlock(&pool_lock);
	if (!w) {
		pthread_t os;
		w = calloc(1, sizeof(*w));
		if (!w)
			return EAGAIN;
		pthread_mutex_init(&w->lock, NULL);
		pthread_cond_init(&w->cond, NULL);
		int r = __real_pthread_create(&os, NULL, worker_main, w);
		if (r) {
			free(w);
			return r;
		}
		pthread_detach(os);
	}
	pthread_mutex_lock(&w->lock);
	w->arg = arg;
	w->done = false;
	w->fn = fn;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	*t = (pthread_t)w;
	return 0;
}

int __wrap_pthread_join(pthread_t t, void **ret)
{
	struct worker *w = (struct worker *)t;

	pthread_mutex_lock(&w->lock);
	while (!w->done)
		pthread_cond_wait(&w->cond, &w->lock);
	if (ret)
		*ret = w->ret;
	pthread_mutex_unlock(&w->lock);
	pthread_mutex_lock(&pool_lock);
	w->next = idle;
	idle = w;
	pthread_mutex_unlock(&pool_lock);
	return 0;
}
