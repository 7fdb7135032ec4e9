/* A minimal PVH ELF note for the tiny test kernels: Xen, XEN_ELFNOTE_PHYS32_ENTRY = 18. */
	.section .note.Xen, "a"
	.balign 4
	.long 4, 4, 18
	.asciz "Xen"
	.balign 4
	.long _start
