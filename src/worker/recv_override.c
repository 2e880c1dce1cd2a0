#include "recv_override.h"
#include "rxguard.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The system call, not recv(): that would be this function.  recvfrom with
 * no address is what libc's recv() does. */
ssize_t
recv(int fd, void *buf, size_t len, int flags)
{
    ssize_t n;

    if (!(flags & MSG_PEEK) && rxguard_in_headers(fd)) {
        /* Take a request's headers alone: see rxguard_headers_take. */
        n = syscall(SYS_recvfrom, fd, buf, len, flags | MSG_PEEK, NULL, NULL);
        if (n <= 0)
            return n;
        len = rxguard_headers_take(fd, buf, (size_t)n);
    }
    n = syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
    if (n <= 0 || (flags & MSG_PEEK))
        return n;
    return rxguard_filter(fd, buf, (size_t)n);
}
