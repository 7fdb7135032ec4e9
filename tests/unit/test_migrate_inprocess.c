/* The migration engine in one process (KVM selftests' state_test idea): a real guest on a
 * source machine is migrated over loopback TCP to a destination machine in the same
 * process, at several points of its run; paused first, so that it arrives paused and
 * nothing runs in between, then RAM and every vCPU's registers must be identical on both
 * sides. Skipped without /dev/kvm or without the guest image (make builds it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <linux/kvm.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "devices/board.h"
#include "hv/clock.h"
#include "hv/layout.h"
#include "hv/machine.h"
#include "migrate/migrate.h"
#include "migrate/wire.h"

#define MEM (64 * MiB)
#define CPUS 2

struct fixture {
	char dir[64], guest[256];
	struct machine src;
};

struct receiver {
	int lfd;
	struct machine *m;
	const char *name;
	int result;
	bool paused;
};

static bool file_has(const char *path, const char *text)
{
	char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = 0;
	return strstr(buf, text) != NULL;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	char log[128];

	snprintf(f->guest, sizeof(f->guest), "%s/guests/hv-guest.elf", build);
	if (access("/dev/kvm", R_OK | W_OK) != 0 || access(f->guest, R_OK) != 0) {
		free(f);
		*state = NULL; /* the tests skip */
		return 0;
	}
	snprintf(f->dir, sizeof(f->dir), "/tmp/hv-inproc-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	setenv("HV_RUN_DIR", f->dir, 1);
	snprintf(log, sizeof(log), "file:%s/src.log", f->dir);
	struct machine_config cfg = { .name = "src", .mem_size = MEM, .ncpus = CPUS, .board = &pc_board,
				      .console = log };
	assert_int_equal(machine_create(&f->src, &cfg), 0);
	assert_int_equal(machine_load_kernel(&f->src, f->guest, NULL, "prog=smp"), 0);
	assert_int_equal(machine_start(&f->src), 0);
	snprintf(log, sizeof(log), "%s/src.log", f->dir);
	struct deadline d = deadline_in_ms(20000);
	while (!file_has(log, "READY") && !deadline_passed(d))
		usleep(20000);
	assert_true(file_has(log, "READY"));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	if (!f)
		return 0;
	vm_request_stop(&f->src.vm, 0, "test over");
	machine_wait(&f->src);
	machine_destroy(&f->src);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void *receive_one(void *arg)
{
	struct receiver *r = arg;
	struct machine_config cfg = { .name = r->name, .board = &pc_board, .console = "none" };
	struct migrate_incoming_opts o = { .hello_by = deadline_in_ms(10000), .arrived_paused = &r->paused };
	struct wire_conn conn;
	char why[256];

	o.stray_reason = why;
	o.stray_reason_len = sizeof(why);
	int fd = accept(r->lfd, NULL, NULL);
	if (fd < 0) {
		r->result = -1;
		return NULL;
	}
	wire_conn_init_fd(&conn, fd);
	r->result = migrate_incoming(&conn, r->m, &cfg, &o);
	close(fd);
	return NULL;
}

static int listen_any(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void assert_same_vcpus(struct vm *a, struct vm *b)
{
	for (int i = 0; i < a->ncpus; i++) {
		struct kvm_regs ra, rb;
		struct kvm_sregs sa, sb;

		assert_int_equal(ioctl(a->vcpus[i].fd, KVM_GET_REGS, &ra), 0);
		assert_int_equal(ioctl(b->vcpus[i].fd, KVM_GET_REGS, &rb), 0);
		if (memcmp(&ra, &rb, sizeof(ra)))
			fail_msg("vCPU %d: registers differ (rip %llx vs %llx, rsp %llx vs %llx)", i,
				 (unsigned long long)ra.rip, (unsigned long long)rb.rip,
				 (unsigned long long)ra.rsp, (unsigned long long)rb.rsp);
		assert_int_equal(ioctl(a->vcpus[i].fd, KVM_GET_SREGS, &sa), 0);
		assert_int_equal(ioctl(b->vcpus[i].fd, KVM_GET_SREGS, &sb), 0);
		assert_int_equal(sa.cr0, sb.cr0);
		assert_int_equal(sa.cr3, sb.cr3);
		assert_int_equal(sa.cr4, sb.cr4);
		assert_int_equal(sa.efer, sb.efer);
		assert_memory_equal(&sa.cs, &sb.cs, sizeof(sa.cs));
		assert_memory_equal(&sa.gdt, &sb.gdt, sizeof(sa.gdt));
		assert_memory_equal(&sa.idt, &sb.idt, sizeof(sa.idt));
	}
}

/* Three points of the guest's run, each migrated to a fresh destination and compared. */
static void test_paused_guest_arrives_identical(void **state)
{
	struct fixture *f = *state;
	atomic_bool cancel = false;

	if (!f)
		skip();
	for (int point = 0; point < 3; point++) {
		struct machine *dst = calloc(1, sizeof(*dst));
		char name[16];
		int port;

		usleep(150000 * (unsigned)(point + 1)); /* the guest runs on meanwhile */
		assert_int_equal(vm_pause(&f->src.vm), 0);
		snprintf(name, sizeof(name), "dst%d", point);
		assert_int_equal(machine_reserve(dst, name), 0);
		struct receiver r = { .lfd = listen_any(&port), .m = dst, .name = name, .result = -1 };
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, receive_one, &r), 0);
		struct migrate_params p;
		struct migrate_stats st;
		migrate_params_default(&p);
		snprintf(p.uri, sizeof(p.uri), "127.0.0.1:%d", port);
		int rs = migrate_source(&f->src, &p, &cancel, NULL, NULL, &st);
		pthread_join(t, NULL);
		close(r.lfd);
		if (rs != 0)
			fail_msg("point %d: the source failed: %s", point, st.error);
		assert_int_equal(r.result, 0);
		assert_true(r.paused);
		assert_int_equal(vm_get_state(&dst->vm), VM_PAUSED);
		assert_int_equal(dst->vm.mem.size, MEM);
		assert_int_equal(memcmp(f->src.vm.mem.host, dst->vm.mem.host, MEM), 0);
		assert_same_vcpus(&f->src.vm, &dst->vm);
		vm_request_stop(&dst->vm, 0, "compared");
		machine_wait(dst);
		machine_destroy(dst);
		free(dst);
		/* The source goes on, to be migrated again at a later point. */
		assert_int_equal(vm_resume(&f->src.vm), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_paused_guest_arrives_identical, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
