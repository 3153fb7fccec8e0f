/*
 * Which sanitizer the build runs under: EDO_ASAN, EDO_TSAN. The code that must tell a
 * sanitizer about something (a stack switch in coro.c, a wait TSan cannot see through in
 * futex.h) keys on these, for gcc's and clang's ways of saying it alike.
 */
#ifndef EDO_CORE_SANITIZE_H
#define EDO_CORE_SANITIZE_H

#if defined(__SANITIZE_ADDRESS__)
#define EDO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDO_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define EDO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EDO_TSAN 1
#endif
#endif

#endif
