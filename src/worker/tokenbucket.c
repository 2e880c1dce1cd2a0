#include "tokenbucket.h"

int
tokenbucket_take(struct tokenbucket *tb, uint64_t now_ms, uint32_t rate, uint32_t burst)
{
    if (tb->refill_ms == 0) {
        tb->tokens = burst;
    } else {
        tb->tokens += (double)(now_ms - tb->refill_ms) * rate / 1000.0;
        if (tb->tokens > burst)
            tb->tokens = burst;
    }
    tb->refill_ms = now_ms;
    if (tb->tokens < 1.0)
        return 0;
    tb->tokens -= 1.0;
    return 1;
}
