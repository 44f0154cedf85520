using Isthmus.Mobility.Threading;

namespace Isthmus.Mobility.Tests.Threading;

/// <summary>One thread serving several mailboxes: order per mailbox, urgent first, failures kept to their mailbox.</summary>
public sealed class EventLoopTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(20);

    /// <summary>Holds the loop inside a handler until <see cref="IDisposable.Dispose"/>, so posts made meanwhile queue up.</summary>
    private static Releaser Block(EventLoop loop)
    {
        var entered = new ManualResetEventSlim();
        var release = new ManualResetEventSlim();
        var blocker = loop.CreateMailbox<int>(_ =>
        {
            entered.Set();
            release.Wait(Guard);
        });
        Assert.True(blocker.TryWrite(0));
        Assert.True(entered.Wait(Guard));
        return new Releaser(release);
    }

    private sealed class Releaser(ManualResetEventSlim release) : IDisposable
    {
        public void Dispose() => release.Set();
    }

    [Fact]
    public async Task Every_mailbox_runs_on_the_one_loop_thread_in_its_own_order()
    {
        using var loop = new EventLoop("test-loop", LoopPriority.Normal);
        const int Mailboxes = 3;
        const int Items = 2000;
        var seen = new List<(int Thread, int Item)>[Mailboxes];
        var boxes = new Mailbox<int>[Mailboxes];
        for (var m = 0; m < Mailboxes; m++)
        {
            var list = seen[m] = [];
            boxes[m] = loop.CreateMailbox<int>(item => list.Add((Environment.CurrentManagedThreadId, item)), urgent: m == 0);
        }

        // Three posting threads at once, one per mailbox.
        await Task.WhenAll(Enumerable.Range(0, Mailboxes).Select(m => Task.Run(() =>
        {
            for (var i = 0; i < Items; i++)
            {
                Assert.True(boxes[m].TryWrite(i));
            }

            boxes[m].TryComplete();
        })));
        await Task.WhenAll(boxes.Select(b => b.Completion)).WaitAsync(Guard);

        var threads = seen.SelectMany(s => s.Select(x => x.Thread)).Distinct().ToList();
        var thread = Assert.Single(threads);
        Assert.NotEqual(Environment.CurrentManagedThreadId, thread);
        foreach (var list in seen)
        {
            Assert.Equal(Enumerable.Range(0, Items), list.Select(x => x.Item));
        }
    }

    [Fact]
    public async Task A_post_from_a_handler_to_an_urgent_mailbox_runs_before_the_rest_of_the_ordinary_queue()
    {
        using var loop = new EventLoop("test-loop", LoopPriority.Normal);
        var order = new List<string>();
        var session = loop.CreateMailbox<string>(s => order.Add(s), urgent: true);
        var decisions = loop.CreateMailbox<string>(s =>
        {
            order.Add(s);
            if (s == "decision")
            {
                Assert.True(loop.IsLoopThread);
                session.TryWrite("update");
            }
        });

        using (Block(loop))
        {
            decisions.TryWrite("decision");
            decisions.TryWrite("status");
            decisions.TryWrite("log");
        }

        decisions.TryComplete();
        await decisions.Completion.WaitAsync(Guard);
        Assert.Equal(["decision", "update", "status", "log"], order);
        Assert.False(loop.IsLoopThread);
    }

    [Fact]
    public async Task Urgent_mailboxes_are_served_before_ordinary_ones_that_were_ready_earlier()
    {
        using var loop = new EventLoop("test-loop", LoopPriority.Normal);
        var order = new List<string>();
        var ordinary = loop.CreateMailbox<string>(order.Add);
        var urgent = loop.CreateMailbox<string>(order.Add, urgent: true);
        using (Block(loop))
        {
            ordinary.TryWrite("o1");
            ordinary.TryWrite("o2");
            urgent.TryWrite("u1");
        }

        ordinary.TryComplete();
        urgent.TryComplete();
        await Task.WhenAll(ordinary.Completion, urgent.Completion).WaitAsync(Guard);
        Assert.Equal(["u1", "o1", "o2"], order);
    }

    [Fact]
    public async Task A_handler_that_throws_faults_only_its_mailbox()
    {
        using var loop = new EventLoop("test-loop", LoopPriority.Normal);
        var bad = loop.CreateMailbox<int>(i => throw new InvalidOperationException($"bad {i}"));
        var good = new List<int>();
        var other = loop.CreateMailbox<int>(good.Add);
        Assert.True(bad.TryWrite(1));
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => bad.Completion.WaitAsync(Guard));
        Assert.Equal("bad 1", error.Message);
        Assert.False(bad.TryWrite(2));

        Assert.True(other.TryWrite(7));
        other.TryComplete();
        await other.Completion.WaitAsync(Guard);
        Assert.Equal([7], good);
        Assert.False(loop.Completion.IsCompleted);
    }

    [Fact]
    public async Task A_completed_mailbox_runs_what_was_queued_and_refuses_the_rest()
    {
        using var loop = new EventLoop("test-loop", LoopPriority.Normal);
        var got = new List<int>();
        var box = loop.CreateMailbox<int>(got.Add);
        using (Block(loop))
        {
            Assert.True(box.TryWrite(1));
            Assert.True(box.TryWrite(2));
            box.TryComplete();
            Assert.False(box.TryWrite(3));
        }

        await box.Completion.WaitAsync(Guard);
        Assert.Equal([1, 2], got);
    }

    [Fact]
    public async Task Stop_ends_the_thread_and_completes_every_open_mailbox()
    {
        var started = new TaskCompletionSource<string>();
        var loop = new EventLoop("test-loop", LoopPriority.Normal, started.SetResult);
        Assert.Equal("normal", await started.Task.WaitAsync(Guard));
        var open = loop.CreateMailbox<int>(_ => { });
        Assert.True(open.TryWrite(1));
        loop.Stop();
        await loop.Completion.WaitAsync(Guard);
        await open.Completion.WaitAsync(Guard);
        Assert.False(open.TryWrite(2));
        var late = loop.CreateMailbox<int>(_ => { });
        Assert.False(late.TryWrite(1));
        await late.Completion.WaitAsync(Guard);
    }

    [Fact]
    public async Task A_loop_that_slept_wakes_for_a_post_from_another_thread_every_time()
    {
        using var loop = new EventLoop("test-loop", LoopPriority.Normal);
        var count = 0;
        var box = loop.CreateMailbox<TaskCompletionSource>(done =>
        {
            count++;
            done.SetResult();
        });

        // Each post finds the loop idle (it finished the one before): every one must wake it.
        for (var i = 0; i < 200; i++)
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Assert.True(box.TryWrite(done));
            await done.Task.WaitAsync(Guard);
        }

        Assert.Equal(200, count);
    }

    [Fact]
    public void A_signal_rung_from_another_thread_wakes_the_sleeping_loop_every_time_and_runs_on_it()
    {
        using var loop = new EventLoop("test-loop", LoopPriority.Normal);
        var runs = 0;
        var onLoop = true;
        var signal = loop.CreateSignal(() =>
        {
            onLoop &= loop.IsLoopThread;
            Volatile.Write(ref runs, runs + 1);
        });

        // Each ring finds the loop asleep (it ran the one before and found nothing else): every ring must wake it.
        for (var i = 1; i <= 200; i++)
        {
            signal.Ring();
            SpinUntil(() => Volatile.Read(ref runs) >= i);
        }

        Assert.Equal(200, Volatile.Read(ref runs));
        Assert.True(onLoop);
    }

    [Fact]
    public async Task Rings_coalesce_but_none_is_lost_the_handler_drains_everything_a_ringer_queued_before_it_rang()
    {
        using var loop = new EventLoop("test-loop", LoopPriority.Normal);
        var queue = new System.Collections.Concurrent.ConcurrentQueue<int>();
        var drained = new List<int>();
        var handlerRuns = 0;
        var signal = loop.CreateSignal(() =>
        {
            handlerRuns++;
            while (queue.TryDequeue(out var item))
            {
                drained.Add(item);
            }
        });

        const int Items = 20_000;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var check = loop.CreateSignal(() =>
        {
            if (drained.Count == Items)
            {
                done.TrySetResult();
            }
        });
        await Task.WhenAll(Enumerable.Range(0, 2).Select(t => Task.Run(() =>
        {
            for (var i = t; i < Items; i += 2)
            {
                queue.Enqueue(i);
                signal.Ring();
            }
        })));

        // Every ring happened after its item was queued, so the loop has drained them all once it served the rings.
        while (!done.Task.IsCompleted)
        {
            check.Ring();
            await Task.WhenAny(done.Task, Task.Delay(10));
            Assert.False(signal.Completion.IsCompleted);
        }

        Assert.Equal(Enumerable.Range(0, Items), drained.Order());
        Assert.InRange(handlerRuns, 1, Items);
    }

    [Fact]
    public void Ringing_allocates_nothing_whether_the_loop_sleeps_or_runs()
    {
        using var loop = new EventLoop("test-loop", LoopPriority.Normal);
        var runs = 0;
        var signal = loop.CreateSignal(() => Interlocked.Increment(ref runs));
        signal.Ring();
        SpinUntil(() => Volatile.Read(ref runs) == 1);

        // Asleep: each ring writes the loop's eventfd; the ringer waits (spinning, allocation-free) until it ran. The
        // fewest bytes of up to three rounds count (Allocations.FewestBytes): the runtime's own one-off allocation (a
        // tier-up or OSR compilation landing in the spin loop) is not the ring's; one per ring recurs every round.
        var deadline = Environment.TickCount64 + (long)Guard.TotalMilliseconds;
        var everyRingRan = true;
        var asleep = Allocations.FewestBytes(() =>
        {
            var target = Volatile.Read(ref runs);
            for (var i = 0; i < 100; i++)
            {
                target++;
                signal.Ring();
                while (Volatile.Read(ref runs) < target && Environment.TickCount64 < deadline)
                {
                    Thread.SpinWait(20);
                }
            }

            everyRingRan &= Volatile.Read(ref runs) == target;
        });
        Assert.True(everyRingRan, $"{Volatile.Read(ref runs)} runs");

        // Busy (held in another handler): rings only set the flag.
        long busy;
        using (Block(loop))
        {
            busy = Allocations.FewestBytes(() =>
            {
                for (var i = 0; i < 1000; i++)
                {
                    signal.Ring();
                }
            });
        }

        Assert.Equal(0, asleep);
        Assert.Equal(0, busy);
    }

    [Fact]
    public async Task A_signal_rung_without_pause_does_not_keep_ordinary_mailboxes_waiting()
    {
        using var loop = new EventLoop("test-loop", LoopPriority.Normal);
        var stop = false;
        var session = loop.CreateMailbox<int>(_ => { }, urgent: true);
        LoopSignal? flood = null;
        flood = loop.CreateSignal(() =>
        {
            // A failover's worker: a ring during every run, and each run hands a session (urgent) its work.
            session.TryWrite(1);
            if (!Volatile.Read(ref stop))
            {
                flood!.Ring();
            }
        });
        flood.Ring();

        var timerInputs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ordinary = loop.CreateMailbox<int>(_ => timerInputs.TrySetResult());
        for (var i = 0; i < 5; i++)
        {
            Assert.True(ordinary.TryWrite(i));
        }

        await timerInputs.Task.WaitAsync(Guard);
        Volatile.Write(ref stop, true);
        Assert.False(flood.Completion.IsCompleted);
    }

    [Fact]
    public async Task A_signal_whose_handler_throws_closes_alone_and_a_closed_or_stopped_signal_ignores_rings()
    {
        var loop = new EventLoop("test-loop", LoopPriority.Normal);
        var bad = loop.CreateSignal(() => throw new InvalidOperationException("bad"));
        var runs = 0;
        var good = loop.CreateSignal(() => Interlocked.Increment(ref runs));
        bad.Ring();
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => bad.Completion.WaitAsync(Guard));
        Assert.Equal("bad", error.Message);
        bad.Ring();

        good.Ring();
        SpinUntil(() => Volatile.Read(ref runs) == 1);
        good.Close();
        await good.Completion.WaitAsync(Guard);
        good.Ring();

        // Rings after the loop ended (its eventfd closed) write nothing and throw nothing; a late signal is closed at once.
        var late = loop.CreateSignal(() => Interlocked.Increment(ref runs));
        loop.Stop();
        await loop.Completion.WaitAsync(Guard);
        await late.Completion.WaitAsync(Guard);
        late.Ring();
        var afterStop = loop.CreateSignal(() => Interlocked.Increment(ref runs));
        await afterStop.Completion.WaitAsync(Guard);
        afterStop.Ring();
        Assert.Equal(1, Volatile.Read(ref runs));
    }

    private static void SpinUntil(Func<bool> condition) =>
        Assert.True(SpinWait.SpinUntil(condition, Guard), "the loop did not run the signal");
}
