// vCPU stall probe for mobility-bench (issue 6): which slow moves overlapped a stall of a vCPU.
//
//   gcc -O2 -pthread -o vcpu_probe vcpu_probe.c && ./vcpu_probe [PERIOD_US] [THRESHOLD_US] > stalls.txt   (as root)
//
// One thread per CPU, pinned to it, under SCHED_FIFO 99, sleeps to absolute deadlines PERIOD_US apart (default 500)
// on CLOCK_MONOTONIC and, when it wakes more than THRESHOLD_US (default 250) after its deadline, prints one line:
//   CPU START END          (START = the deadline, END = the wake-up, both CLOCK_REALTIME epoch seconds: tshark's clock)
// Nothing in the guest but interrupt handlers, interrupts-off sections and (this kernel runs PREEMPT_NONE) another task's
// non-preemptible kernel path can hold a FIFO 99 wake-up back, so a late wake-up is the vCPU stopped by the host (steal)
// or one of those; a stall longer than PERIOD_US always contains a deadline, so every stall over PERIOD_US + THRESHOLD_US
// is seen (as at least its length minus PERIOD_US). Cost: PERIOD_US apart, a few microseconds per CPU per wake-up.
// Ends on SIGINT/SIGTERM with a summary line per CPU on stderr (wake-ups, late ones, the largest).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long period_ns = 500000, threshold_ns = 250000;
static volatile sig_atomic_t stopping;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

struct probe { int cpu; long wakes, late; double worst_ms; pthread_t thread; };

static long diff_ns(const struct timespec *a, const struct timespec *b)
{
    return (a->tv_sec - b->tv_sec) * 1000000000L + (a->tv_nsec - b->tv_nsec);
}

static void *run(void *arg)
{
    struct probe *p = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(p->cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
        fprintf(stderr, "cpu%d: affinity refused\n", p->cpu);
        exit(1);
    }
    struct sched_param sp = { .sched_priority = 99 };
    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) != 0) {
        fprintf(stderr, "cpu%d: SCHED_FIFO 99 refused (run as root)\n", p->cpu);
        exit(1);
    }
    struct timespec next, now, real;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!stopping) {
        next.tv_nsec += period_ns;
        while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR && !stopping) { }
        clock_gettime(CLOCK_MONOTONIC, &now);
        clock_gettime(CLOCK_REALTIME, &real);
        p->wakes++;
        long late = diff_ns(&now, &next);
        if (late > threshold_ns) {
            p->late++;
            if (late / 1e6 > p->worst_ms) p->worst_ms = late / 1e6;
            double end = real.tv_sec + real.tv_nsec / 1e9;
            pthread_mutex_lock(&out_lock);
            printf("%d %.6f %.6f\n", p->cpu, end - late / 1e9, end);
            fflush(stdout);
            pthread_mutex_unlock(&out_lock);
            // A long stall: start again from now rather than firing for every deadline it skipped.
            if (late > period_ns) next = now;
        }
    }
    return NULL;
}

static void on_signal(int sig) { (void)sig; stopping = 1; }

int main(int argc, char **argv)
{
    if (argc > 1) period_ns = atol(argv[1]) * 1000L;
    if (argc > 2) threshold_ns = atol(argv[2]) * 1000L;
    if (period_ns <= 0 || threshold_ns <= 0) { fprintf(stderr, "usage: vcpu_probe [PERIOD_US] [THRESHOLD_US]\n"); return 2; }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    struct probe *probes = calloc((size_t)cpus, sizeof *probes);
    // The probe threads block the signals (they inherit this mask), so only the main thread takes them and pause() ends.
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &mask, &old);
    for (int i = 0; i < cpus; i++) {
        probes[i].cpu = i;
        if (pthread_create(&probes[i].thread, NULL, run, &probes[i]) != 0) { perror("pthread_create"); return 1; }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    // The threads see the flag at their next wake-up (at most PERIOD_US later).
    while (!stopping) pause();
    for (int i = 0; i < cpus; i++) {
        pthread_join(probes[i].thread, NULL);
        fprintf(stderr, "cpu%d: %ld wake-ups, %ld late by > %ld us, largest %.2f ms\n",
                i, probes[i].wakes, probes[i].late, threshold_ns / 1000, probes[i].worst_ms);
    }
    return 0;
}
