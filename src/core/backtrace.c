/*
 * Backtraces: libunwind walks stacks (a suspended task's, from the registers its switch
 * saved; the running thread's, from a signal handler), libdw names the frames.
 *
 * Only this file knows libunwind and libdw; backtrace.h says who may call what. Without
 * libunwind every walk is -ENOSYS; without libdw frames are named by libunwind (from the
 * symbol tables: no file:line).
 */
#include "core/backtrace.h"

#include "core/sched.h"
#include "core/task.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef EDO_HAVE_UNWIND
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#endif
#ifdef EDO_HAVE_DW
#include <elfutils/libdwfl.h>
#include <gelf.h>
#endif

bool edo__bt_available(void)
{
#ifdef EDO_HAVE_UNWIND
    return true;
#else
    return false;
#endif
}

#ifdef EDO_HAVE_UNWIND
/* Steps c outwards, storing each frame's address from pc[at] on. */
static int walk(unw_cursor_t *c, uintptr_t *pc, int at, int max)
{
    int n = at;
    while (n < max) {
        unw_word_t ip = 0;
        if (unw_get_reg(c, UNW_REG_IP, &ip) < 0 || ip == 0)
            break;
        pc[n++] = (uintptr_t)ip;
        if (unw_step(c) <= 0)
            break;
    }
    return n;
}
#endif

int edo__bt_of_ctx(const edo__ctx *ctx, edo__bt *bt)
{
    bt->n = 0;
    bt->exact0 = false;
#if defined(EDO_HAVE_UNWIND) && defined(__x86_64__)
    unw_context_t uc; /* on x86-64 libunwind's context is a ucontext_t */
#ifdef EDO_CORO_UCONTEXT
    uc = ctx->uc; /* what swapcontext saved: the registers at its return */
#else
    /* The rest of the registers do not matter to the walk: take the calling thread's, then
     * put in what edo__ctx_switch pushed (coro.c): the FP control words, r15, r14, r13,
     * r12, rbx, rbp, and the return address; the stack pointer is the one after its ret. */
    if (unw_getcontext(&uc) < 0)
        return -ENOSYS;
    const uint64_t *sp = ctx->sp;
    greg_t *r = uc.uc_mcontext.gregs;
    r[REG_R15] = (greg_t)sp[1];
    r[REG_R14] = (greg_t)sp[2];
    r[REG_R13] = (greg_t)sp[3];
    r[REG_R12] = (greg_t)sp[4];
    r[REG_RBX] = (greg_t)sp[5];
    r[REG_RBP] = (greg_t)sp[6];
    r[REG_RIP] = (greg_t)sp[7];
    r[REG_RSP] = (greg_t)(uintptr_t)(sp + 8);
#endif
    unw_cursor_t c;
    if (unw_init_local(&c, &uc) < 0)
        return -ENOSYS;
    bt->n = walk(&c, bt->pc, 0, EDO__BT_MAX);
    return 0;
#else
    /* aarch64 (and other CPUs): not read yet. */
    (void)ctx;
    return -ENOSYS;
#endif
}

int edo__bt_here(edo__bt *bt, uintptr_t pc)
{
    bt->n = 0;
    bt->exact0 = false;
#ifdef EDO_HAVE_UNWIND
    unw_context_t uc;
    unw_cursor_t c;
    if (unw_getcontext(&uc) < 0 || unw_init_local(&c, &uc) < 0)
        return -ENOSYS;
    if (pc) {
        /* The interrupted frame is the one at pc, found by address: libunwind's versions
         * differ in which frame they call the signal's (1.6 the one after the trampoline). */
        for (int k = 0; k < 64; k++) {
            unw_word_t ip = 0;
            if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0)
                break;
            if (ip == pc) {
                bt->exact0 = true;
                bt->n = walk(&c, bt->pc, 0, EDO__BT_MAX);
                return 0;
            }
            if (unw_step(&c) <= 0)
                break;
        }
        if (unw_getcontext(&uc) < 0 || unw_init_local(&c, &uc) < 0)
            return -ENOSYS;
    }
    /* No such frame (a sanitizer that delays handlers calls them from its own code, with
     * a copy of the context of long ago), or no pc: everything below this function and its
     * caller. */
    for (int i = 0; i < 2; i++)
        if (unw_step(&c) <= 0)
            return 0;
    bt->n = walk(&c, bt->pc, 0, EDO__BT_MAX);
    return 0;
#else
    (void)pc;
    return -ENOSYS;
#endif
}

/* ---- naming frames ------------------------------------------------------------------------ */

static pthread_mutex_t sym_lock = PTHREAD_MUTEX_INITIALIZER; /* guards what follows */

/* ---- a stack big enough ------------------------------------------------------------------- */

#define BIG_STACK (1024 * 1024)

static edo__stack big; /* mapped at the first call from a task, kept while users last */
static bool big_mapped;
static int users; /* runtimes alive: what is kept goes with the last */

typedef struct big_call {
    void (*fn)(void *);
    void *arg;
    edo__ctx *back; /* the caller's context */
    edo__ctx self;
} big_call;

/* Runs on the big stack; never returns, and its last switch leaves for good: as a task's
 * entry (task.c), not instrumented, so that TSan's fiber keeps no frame of it. */
EDO__NO_TSAN static void big_entry(void *p)
{
    big_call *c = p;
    edo__coro_started(&c->self);
    c->fn(c->arg);
    edo__coro_switch(&c->self, c->back, 1);
    __builtin_unreachable();
}

void edo__bt_call(void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&sym_lock);
    edo_task *t = edo__task_current();
    if (t && !big_mapped)
        big_mapped = edo__stack_map(&big, BIG_STACK) == 0;
    if (!t || !big_mapped) {
        fn(arg); /* a thread's own stack (or no other to be had) */
        pthread_mutex_unlock(&sym_lock);
        return;
    }
    /* The task's context is the one to come back to: its stack bounds for ASan, its
     * fiber for TSan (edo__ctx_init_thread takes the current one). */
    edo__ctx back;
    edo__ctx_init_thread(&back);
    back.stack_lo = t->ctx.stack_lo;
    back.stack_len = t->ctx.stack_len;
    big_call c;
    memset(&c, 0, sizeof c);
    c.fn = fn;
    c.arg = arg;
    c.back = &back;
    size_t page = edo__page_size();
    edo__ctx_make(&c.self, big.map + page, big.map_len - page, big_entry, &c);
    edo__coro_switch(&back, &c.self, 0);
    edo__ctx_release(&c.self, true);
    pthread_mutex_unlock(&sym_lock);
}

/* ---- names -------------------------------------------------------------------------------- */

#ifdef EDO_HAVE_DW
static Dwfl *dwfl;

/* Debug information in a separate file is looked for where Debian's -dbgsym packages put
 * it, by build id (/usr/lib/debug/.build-id/ab/cdef....debug), and nowhere else: libdw's
 * own search loads libdebuginfod and its thirty libraries at its first miss (some 50 ms,
 * in the middle of a blocking-task report) and may ask the network. A module's own debug
 * sections are used either way. Returns an open descriptor, or -1. */
static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                          const char *file_name, const char *debuglink_file,
                          GElf_Word debuglink_crc, char **debuginfo_file_name)
{
    const unsigned char *id;
    GElf_Addr vaddr;
    int n = dwfl_module_build_id(mod, &id, &vaddr);
    if (n < 2)
        return -1;
    char path[sizeof "/usr/lib/debug/.build-id/" + 2 * 64 + sizeof "/.debug"];
    int at = snprintf(path, sizeof path, "/usr/lib/debug/.build-id/%02x/", id[0]);
    for (int i = 1; i < n && i < 64; i++)
        at += snprintf(path + at, sizeof path - (size_t)at, "%02x", id[i]);
    snprintf(path + at, sizeof path - (size_t)at, ".debug");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        *debuginfo_file_name = strdup(path);
    return fd;
}

static char *debuginfo_path;
static const Dwfl_Callbacks dwfl_callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

/* (Re)reads the process's modules; a module loaded since the last time is then known. */
static void dwfl_refresh(void)
{
    if (!dwfl && !(dwfl = dwfl_begin(&dwfl_callbacks)))
        return;
    /* The mappings without the vDSO: libdw would look for its debug information through
     * libdebuginfod, which it loads, with thirty libraries, at the first miss (some 50 to
     * 150 ms, in the middle of a blocking-task report). Its frames are named by libunwind. */
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return;
    char *text = NULL;
    size_t len = 0;
    FILE *kept = open_memstream(&text, &len);
    char line[4096 + 128];
    while (kept && fgets(line, sizeof line, maps))
        if (!strstr(line, "[vdso]") && !strstr(line, "[vvar]"))
            fputs(line, kept);
    fclose(maps);
    if (!kept)
        return;
    fclose(kept);
    FILE *in = fmemopen(text, len, "r");
    dwfl_report_begin(dwfl);
    if (in) {
        dwfl_linux_proc_maps_report(dwfl, in);
        fclose(in);
    }
    dwfl_report_end(dwfl, NULL, NULL);
    free(text);
}
#endif

#ifdef EDO_HAVE_UNWIND
static void unwind_start(void)
{
    unw_context_t uc;
    unw_cursor_t c;
    /* The first cursor sets libunwind up (the pipe included); no step, whose check of
     * memory Valgrind would take for a write of uninitialised bytes. */
    if (unw_getcontext(&uc) == 0)
        unw_init_local(&c, &uc);
}
#endif

void edo__bt_retain(void)
{
#ifdef EDO_HAVE_UNWIND
    /* libunwind opens a pipe (to check that memory can be read) at its first use and keeps
     * it for the life of the process: let that be now, when the first runtime is made,
     * rather than at some backtrace later on, where a program counting its descriptors
     * would find two more than it had. */
    static pthread_once_t unwind_once = PTHREAD_ONCE_INIT;
    pthread_once(&unwind_once, unwind_start);
#endif
    pthread_mutex_lock(&sym_lock);
    users++;
    pthread_mutex_unlock(&sym_lock);
}

void edo__bt_release(void)
{
    pthread_mutex_lock(&sym_lock);
    if (--users == 0) {
#ifdef EDO_HAVE_DW
        /* libdw keeps a descriptor open for each module it read. */
        if (dwfl)
            dwfl_end(dwfl);
        dwfl = NULL;
#endif
        if (big_mapped)
            edo__stack_unmap(&big);
        big_mapped = false;
    }
    pthread_mutex_unlock(&sym_lock);
}

typedef struct frame_name {
    const char *fn;   /* NULL: unknown */
    const char *file; /* basename, NULL: unknown */
    int line;
    const char *module; /* basename of the object, NULL: unknown */
#ifdef EDO_HAVE_UNWIND
    char unw_name[128];
#endif
} frame_name;

#ifdef EDO_HAVE_DW
static const char *base_name(const char *path)
{
    const char *s = path ? strrchr(path, '/') : NULL;
    return s ? s + 1 : path;
}
#endif

/* Names the instruction at addr (inside edo__bt_call). */
#ifdef EDO_HAVE_DW
/* Whether libdw can name mod's frames without looking for debug information elsewhere: its
 * file has its own (.debug_info), or a separate file is where find_debuginfo looks. For
 * any other module (a stripped libc) libdw's search ends in libdebuginfod, which it loads
 * with thirty libraries at the first miss; libunwind names those frames instead. The
 * answer is kept in the module's user data (1: no, 2: yes). */
static bool module_has_debug(Dwfl_Module *mod)
{
    void **user = NULL;
    dwfl_module_info(mod, &user, NULL, NULL, NULL, NULL, NULL, NULL);
    if (user && *user)
        return *user == (void *)2;
    bool has = false;
    GElf_Addr bias;
    Elf *elf = dwfl_module_getelf(mod, &bias);
    size_t shstrndx;
    if (elf && elf_getshdrstrndx(elf, &shstrndx) == 0) {
        for (Elf_Scn *scn = NULL; !has && (scn = elf_nextscn(elf, scn));) {
            GElf_Shdr sh;
            const char *name =
                gelf_getshdr(scn, &sh) ? elf_strptr(elf, shstrndx, sh.sh_name) : NULL;
            has = name && !strcmp(name, ".debug_info");
        }
    }
    if (user)
        *user = (void *)(uintptr_t)(has ? 2 : 1);
    return has;
}
#endif

static void name_frame(uintptr_t addr, frame_name *fn, bool *refreshed)
{
    memset(fn, 0, sizeof *fn);
#ifdef EDO_HAVE_DW
    Dwfl_Module *mod = dwfl ? dwfl_addrmodule(dwfl, addr) : NULL;
    if (!mod && !*refreshed) {
        *refreshed = true; /* loaded after the last look, perhaps */
        dwfl_refresh();
        mod = dwfl ? dwfl_addrmodule(dwfl, addr) : NULL;
    }
    if (mod && !module_has_debug(mod))
        mod = NULL; /* named by libunwind below, from its symbol tables */
    if (mod) {
        fn->module = base_name(dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL));
        fn->fn = dwfl_module_addrname(mod, addr);
        Dwfl_Line *line = dwfl_module_getsrc(mod, addr);
        int lineno = 0;
        const char *file = line ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
        if (file && lineno > 0) {
            fn->file = base_name(file);
            fn->line = lineno;
        }
    }
#else
    (void)refreshed;
#endif
#ifdef EDO_HAVE_UNWIND
    if (!fn->fn) {
        /* libunwind names only the address a cursor stands at: make a cursor stand there. */
        unw_context_t uc;
        unw_cursor_t c;
        unw_word_t off;
#if defined(__x86_64__)
        if (unw_getcontext(&uc) == 0) {
            uc.uc_mcontext.gregs[REG_RIP] = (greg_t)addr;
            if (unw_init_local(&c, &uc) == 0 &&
                unw_get_proc_name(&c, fn->unw_name, sizeof fn->unw_name, &off) == 0)
                fn->fn = fn->unw_name;
        }
#else
        (void)uc;
        (void)c;
        (void)off;
#endif
    }
#endif
}

static void put(char *buf, size_t len, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*at < len ? buf + *at : NULL, *at < len ? len - *at : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        *at += (size_t)n;
}

/* Frames left out at the top of a stack that is not a signal's: the switch of a suspended
 * task, and the sanitizer's own code that ran a delayed handler. */
static bool is_plumbing(const char *fn)
{
    return fn && (!strcmp(fn, "edo__coro_switch") || !strcmp(fn, "edo__switch_out") ||
                  !strncmp(fn, "__tsan", 6) || !strncmp(fn, "_ZN6__tsan", 10) ||
                  !strncmp(fn, "__interceptor_", 14) || !strncmp(fn, "_ZN11__sanitizer", 16));
}

size_t edo__bt_format(const edo__bt *bt, char *buf, size_t len)
{
    size_t at = 0;
    if (len)
        buf[0] = 0;
#ifdef EDO_HAVE_DW
    bool refreshed = dwfl == NULL;
    if (!dwfl)
        dwfl_refresh();
#else
    bool refreshed = true;
#endif
    bool leading = !bt->exact0;
    int shown = 0;
    for (int i = 0; i < bt->n; i++) {
        /* A return address is the instruction after the call: the call is one before. */
        uintptr_t addr = bt->pc[i] - (i == 0 && bt->exact0 ? 0 : 1);
        frame_name fn;
        name_frame(addr, &fn, &refreshed);
        if (leading && is_plumbing(fn.fn))
            continue;
        leading = false;
        /* A versioned symbol ("clock_gettime@@GLIBC_2.17") is shown by its name. */
        int fnlen = fn.fn ? (int)strcspn(fn.fn, "@") : 0;
        if (fn.fn && fn.file)
            put(buf, len, &at, "  #%d %.*s (%s:%d)\n", shown, fnlen, fn.fn, fn.file, fn.line);
        else if (fn.fn)
            put(buf, len, &at, "  #%d %.*s\n", shown, fnlen, fn.fn);
        else if (fn.module)
            put(buf, len, &at, "  #%d 0x%lx (%s)\n", shown, (unsigned long)bt->pc[i], fn.module);
        else
            put(buf, len, &at, "  #%d 0x%lx\n", shown, (unsigned long)bt->pc[i]);
        shown++;
    }
    return at;
}
