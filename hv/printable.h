/* Text from a peer or a guest (a migration stream's names, paths, MACs and reasons) made
 * safe to print: every byte outside printable ASCII becomes '?', so no escape sequence
 * reaches an operator's terminal or a reply. The one helper for it. */
#ifndef HV_PRINTABLE_H
#define HV_PRINTABLE_H

#include <stddef.h>

/* Copies at most len bytes of src (a NUL among them becomes '?' too) into dst of cap bytes (cap >= 1),
 * truncated and always NUL-terminated. Returns dst, for use inside a printf argument list. */
char *printable_copy(char *dst, size_t cap, const char *src, size_t len);
/* printable_copy of a NUL-terminated string. */
char *printable(char *dst, size_t cap, const char *src);

#endif
