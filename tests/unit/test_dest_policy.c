/* The destination's policy: a HELLO's device list only describes, the operator's options
 * decide (migrate/dest_policy.c), and no byte of the stream prints as a control character
 * (hv/printable.c, migrate/device_state.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "hv/layout.h"
#include "hv/log.h"
#include "hv/machine.h"
#include "hv/printable.h"
#include "migrate/dest_policy.h"
#include "migrate/device_state.h"
#include "fake_vm.h"

static void assert_no_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			fail_msg("control byte 0x%02x in a message", (unsigned char)*s);
}

static void test_printable(void **unused)
{
	char out[8];

	assert_string_equal(printable(out, sizeof(out), "a\x1b[2J"), "a?[2J");
	assert_string_equal(printable(out, sizeof(out), "0123456789"), "0123456");
	assert_string_equal(printable_copy(out, sizeof(out), "a\0b\x7f", 4), "a?b?");
	assert_string_equal(printable_copy(out, 1, "abc", 3), "");
}

/* The strings a HELLO brings (type, MAC, path) with ESC and BEL: refused, never echoed raw. */
static void test_escapes_in_device_list(void **unused)
{
	static const char *const lists[] = {
		"[{\"type\":\"evil\\u001b[2J\\u0007\"}]",
		"[{\"type\":\"virtio-net\",\"mac\":\"\\u001b]0;owned\\u0007\"}]",
		"[{\"type\":\"virtio-blk\",\"path\":\"/tmp/x\\u001b[31m\",\"size\":4096}]",
		"[{\"type\":\"virtio-blk\",\"path\":\"/tmp/x\\u007f\",\"size\":4096}]",
	};
	struct source_devices *src = malloc(sizeof(*src));
	char err[256];

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		err[0] = '\0';
		assert_int_equal(device_state_parse_list(lists[i], src, err, sizeof(err)), -1);
		assert_true(err[0]);
		assert_no_control(err);
	}
	free(src);
}

static void test_device_list_forms(void **unused)
{
	struct source_devices *src = malloc(sizeof(*src));
	char err[256];

	assert_int_equal(device_state_parse_list(
				 "[{\"type\":\"serial\",\"name\":\"com1\"},"
				 "{\"type\":\"virtio-blk\",\"path\":\"/a/b.img\",\"ro\":true,\"size\":1048576},"
				 "{\"type\":\"virtio-net\",\"tap\":\"tap0\",\"mac\":\"52:54:00:12:34:56\"}]",
				 src, err, sizeof(err)),
			 0);
	assert_int_equal(src->ndisks, 1);
	assert_string_equal(src->disks[0].path, "/a/b.img");
	assert_int_equal(src->disks[0].sectors, 2048);
	assert_true(src->disks[0].ro);
	assert_int_equal(src->nnics, 1);
	assert_int_equal(src->macs[0][5], 0x56);
	/* No size, a non-object entry: refused, not asserted on. */
	assert_int_equal(device_state_parse_list("[{\"type\":\"virtio-blk\",\"path\":\"/a\"}]", src, err,
						 sizeof(err)), -1);
	assert_int_equal(device_state_parse_list("[5]", src, err, sizeof(err)), -1);
	free(src);
}

struct fixture {
	char dir[64], img[128];
	struct dest_policy policy;
	struct source_devices src;
	struct machine_config cfg;
	struct dest_refusal r;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/hv-dest-policy.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->img, sizeof(f->img), "%s/disk.img", f->dir);
	int fd = open(f->img, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	f->src.ndisks = 1;
	snprintf(f->src.disks[0].path, sizeof(f->src.disks[0].path), "/elsewhere/disk.img");
	f->src.disks[0].sectors = 2048;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int map_copy(struct fixture *f, struct dest_copy *copy)
{
	memset(&f->r, 0, sizeof(f->r));
	int rc = dest_policy_devices(&f->policy, &f->src, &f->cfg, copy, &f->r);
	if (rc < 0) {
		assert_no_control(f->r.detail);
		assert_no_control(f->r.peer);
		/* The peer never learns a path of either side. */
		assert_null(strstr(f->r.peer, "/"));
		assert_non_null(strstr(f->r.peer, "see the destination's log"));
	}
	return rc;
}

static int map(struct fixture *f)
{
	return map_copy(f, NULL);
}

static void test_nothing_allowed_opens_nothing(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(map(f), -1);
	assert_string_equal(f->r.peer, "the destination's policy does not provide disk 0 (1 MiB, rw); "
				       "see the destination's log");
	assert_non_null(strstr(f->r.detail, "no --disk"));
}

static void test_named_disk_matched_by_size_and_ro(void **state)
{
	struct fixture *f = *state;

	f->policy.ndisks = 1;
	snprintf(f->policy.disks[0].path, sizeof(f->policy.disks[0].path), "%s", f->img);
	assert_int_equal(map(f), 0);
	assert_int_equal(f->cfg.ndisks, 1);
	assert_string_equal(f->cfg.disks[0].path, f->img);
	assert_false(f->cfg.disks[0].ro);
	/* Read-only here: a writable source disk is refused; a read-only one opens read-only. */
	f->policy.disks[0].ro = true;
	assert_int_equal(map(f), -1);
	assert_non_null(strstr(f->r.detail, "read-only here"));
	f->src.disks[0].ro = true;
	assert_int_equal(map(f), 0);
	assert_true(f->cfg.disks[0].ro);
	/* A rw image for a ro source disk: still opened read-only. */
	f->policy.disks[0].ro = false;
	assert_int_equal(map(f), 0);
	assert_true(f->cfg.disks[0].ro);
	f->src.disks[0].sectors = 4096;
	assert_int_equal(map(f), -1);
	assert_non_null(strstr(f->r.detail, "2048 sectors"));
	assert_non_null(strstr(f->r.peer, "disk 0 (2 MiB, ro)"));
}

static void test_disk_dir_takes_the_file_name_only(void **state)
{
	struct fixture *f = *state;
	char link[160];

	f->policy.disk_dir = f->dir;
	assert_int_equal(map(f), 0);
	assert_string_equal(f->cfg.disks[0].path, f->img);
	snprintf(f->src.disks[0].path, sizeof(f->src.disks[0].path), "/x/..");
	assert_int_equal(map(f), -1);
	snprintf(f->src.disks[0].path, sizeof(f->src.disks[0].path), "/x/");
	assert_int_equal(map(f), -1);
	snprintf(link, sizeof(link), "%s/link.img", f->dir);
	assert_int_equal(symlink(f->img, link), 0);
	snprintf(f->src.disks[0].path, sizeof(f->src.disks[0].path), "/x/link.img");
	assert_int_equal(map(f), -1);
	assert_non_null(strstr(f->r.detail, "symbolic link"));
	/* --shared-storage: the source's path itself, under the same rules. */
	f->policy.disk_dir = NULL;
	f->policy.shared_storage = true;
	assert_int_equal(map(f), -1);
	snprintf(f->src.disks[0].path, sizeof(f->src.disks[0].path), "%s", f->img);
	assert_int_equal(map(f), 0);
	assert_string_equal(f->cfg.disks[0].path, f->img);
	snprintf(f->src.disks[0].path, sizeof(f->src.disks[0].path), "/dev/null");
	assert_int_equal(map(f), -1);
	assert_non_null(strstr(f->r.detail, "not a regular file"));
}

/* What the policy checked is what the device opens: a file renamed over the image, or a
 * symbolic link put in its place, between the check and the open, is refused. */
static void test_checked_file_is_the_file_opened(void **state)
{
	struct fixture *f = *state;
	char other[160], moved[160];
	struct vm *vm = fake_vm_create(16 * MiB);
	struct pci_bus *bus = pci_bus_create(vm);

	f->policy.disk_dir = f->dir;
	assert_int_equal(map(f), 0);
	assert_true(f->cfg.disks[0].expect.set);
	assert_true(f->cfg.disks[0].expect.nofollow);
	struct virtio_blk *b = virtio_blk_create_checked(bus, 3, f->cfg.disks[0].path, false, &f->cfg.disks[0].expect);
	assert_non_null(b);
	virtio_blk_destroy(b);

	snprintf(other, sizeof(other), "%s/other.img", f->dir);
	int fd = open(other, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	snprintf(moved, sizeof(moved), "%s/checked.img", f->dir);
	assert_int_equal(rename(f->img, moved), 0);
	assert_int_equal(link(other, f->img), 0); /* another file, same name, same size */
	assert_null(virtio_blk_create_checked(bus, 3, f->cfg.disks[0].path, false, &f->cfg.disks[0].expect));
	assert_non_null(strstr(hv_last_error(), "was replaced by another file after it was checked"));
	assert_int_equal(unlink(f->img), 0);
	assert_int_equal(symlink(moved, f->img), 0); /* a link to the very file checked */
	assert_null(virtio_blk_create_checked(bus, 3, f->cfg.disks[0].path, false, &f->cfg.disks[0].expect));
	assert_non_null(strstr(hv_last_error(), "became a symbolic link"));
	pci_bus_destroy(bus);
	fake_vm_destroy(vm);
}

static void test_nics_take_the_source_mac(void **state)
{
	struct fixture *f = *state;
	static const uint8_t mac[6] = { 0x52, 0x54, 0, 1, 2, 3 };

	f->src.ndisks = 0;
	f->src.nnics = 1;
	memcpy(f->src.macs[0], mac, 6);
	assert_int_equal(map(f), -1);
	assert_non_null(strstr(f->r.detail, "52:54:00:01:02:03"));
	f->policy.nnics = 1;
	snprintf(f->policy.nics[0].tap, sizeof(f->policy.nics[0].tap), "tapX");
	assert_int_equal(map(f), 0);
	assert_string_equal(f->cfg.nics[0].tap, "tapX");
	assert_memory_equal(f->cfg.nics[0].mac, mac, 6);
	assert_true(f->cfg.nics[0].has_mac);
	f->policy.nics[0].has_mac = true; /* another MAC given here */
	assert_int_equal(map(f), -1);
	assert_non_null(strstr(f->r.detail, "another MAC"));
}

static void test_memory_limit(void **unused)
{
	struct dest_policy p = { .max_mem = 64ull << 20 };
	struct dest_refusal r;

	assert_int_equal(dest_policy_memory(&p, 64ull << 20, &r), 0);
	assert_int_equal(dest_policy_memory(&p, (64ull << 20) + 4096, &r), -1);
	assert_non_null(strstr(r.detail, "--max-mem"));
	assert_non_null(strstr(r.peer, "memory"));
	p.max_mem = 0;
	assert_true(dest_policy_mem_available() > 0);
	assert_int_equal(dest_policy_memory(&p, 1ull << 46, &r), -1);
	assert_non_null(strstr(r.detail, "MemAvailable"));
}

static int files_in(const char *dir)
{
	char cmd[160], out[32] = "";

	snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", dir);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, sizeof(out), p));
	pclose(p);
	return atoi(out);
}

/* --storage copy: a new image, sparse, 0600, of the source's size, where the policy says
 * (--disk-dir with the source's file name, or the name it asks for there; --disk PATH);
 * never over an existing file unless --force; never outside --disk-dir; never without
 * room; removed on failure, kept on success; a refusal leaves no file. */
static void test_copy_creates_only_what_the_policy_allows(void **state)
{
	struct fixture *f = *state;
	struct dest_copy copy = { .n = 0 };
	char dir[128], want[160], path[160];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/in", f->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	/* Nothing allowed. */
	assert_int_equal(map_copy(f, &copy), -1);
	assert_non_null(strstr(f->r.detail, "no --disk or --disk-dir to copy it into"));
	f->policy.disk_dir = dir;
	assert_int_equal(map_copy(f, &copy), 0);
	assert_int_equal(copy.n, 1);
	snprintf(path, sizeof(path), "%s/disk.img", dir);
	assert_string_equal(copy.path[0], path);
	assert_string_equal(f->cfg.disks[0].path, path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 1 << 20);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_blocks, 0);
	dest_copy_discard(&copy);
	assert_int_equal(files_in(dir), 0);
	/* It exists now: refused, unless --force. */
	assert_int_equal(map_copy(f, &copy), 0);
	dest_copy_keep(&copy);
	assert_int_equal(map_copy(f, &copy), -1);
	assert_non_null(strstr(f->r.detail, "exists; remove it, or let 'hvctl receive --force' replace it"));
	f->policy.force = true;
	assert_int_equal(map_copy(f, &copy), 0);
	dest_copy_discard(&copy);
	f->policy.force = false;
	/* The name the source asks for, in --disk-dir; outside it: refused. */
	snprintf(want, sizeof(want), "%s/other.img", dir);
	copy.want[0] = want;
	assert_int_equal(map_copy(f, &copy), 0);
	assert_string_equal(copy.path[0], want);
	dest_copy_discard(&copy);
	copy.want[0] = "/etc/cron.d/evil";
	assert_int_equal(map_copy(f, &copy), -1);
	assert_non_null(strstr(f->r.detail, "outside --disk-dir"));
	copy.want[0] = "../../etc/x";
	assert_int_equal(map_copy(f, &copy), -1);
	copy.want[0] = "";
	/* No room: a disk whose data takes more than the file system has. */
	f->src.disks[0].sectors = 1ull << 41; /* 1 PiB */
	f->src.disks[0].allocated = 1ull << 50;
	assert_int_equal(map_copy(f, &copy), -1);
	assert_non_null(strstr(f->r.detail, "MiB free, the copy needs"));
	/* --disk PATH wins; read-only there cannot take a copy. */
	f->src.disks[0].sectors = 2048;
	f->src.disks[0].allocated = 0;
	snprintf(f->policy.disks[0].path, sizeof(f->policy.disks[0].path), "%s/named.img", f->dir);
	f->policy.ndisks = 1;
	f->policy.disks[0].ro = true;
	assert_int_equal(map_copy(f, &copy), -1);
	assert_non_null(strstr(f->r.detail, "read-only"));
	f->policy.disks[0].ro = false;
	assert_int_equal(map_copy(f, &copy), 0);
	assert_string_equal(copy.path[0], f->policy.disks[0].path);
	dest_copy_discard(&copy);
	/* A NIC refused: no image is left behind. */
	f->src.nnics = 1;
	assert_int_equal(map_copy(f, &copy), -1);
	assert_int_equal(copy.n, 0);
	assert_int_equal(stat(f->policy.disks[0].path, &st), -1);
	assert_int_equal(files_in(dir), 0); /* the --force copy above replaced disk.img, then was discarded */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_escapes_in_device_list),
		cmocka_unit_test(test_device_list_forms),
		cmocka_unit_test_setup_teardown(test_nothing_allowed_opens_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_named_disk_matched_by_size_and_ro, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_dir_takes_the_file_name_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checked_file_is_the_file_opened, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nics_take_the_source_mac, setup, teardown),
		cmocka_unit_test(test_memory_limit),
		cmocka_unit_test_setup_teardown(test_copy_creates_only_what_the_policy_allows, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
