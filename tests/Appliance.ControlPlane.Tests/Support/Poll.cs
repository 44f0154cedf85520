namespace Isthmus.ControlPlane.Tests.Support;

/// <summary>
/// Bounded waits for what the worker or a loop thread does after the call that asked for it has returned (a frame
/// forwarded, a route announced, a trace recorded). The bound is for a stuck test on a loaded 2-core machine, not a
/// timing assert: the caller asserts once, on the value the wait ended with.
/// </summary>
public static class Poll
{
    /// <summary>The default bound: a CI run on two shared cores can stall for seconds, a condition normally holds in milliseconds.</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    /// <summary>Polls <paramref name="condition"/> every 10 ms until it holds or <paramref name="timeout"/> (<see cref="Bound"/>) passes; returns its last value.</summary>
    public static async Task<bool> Until(Func<bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? Bound);
        while (!condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                return false;
            }

            await Task.Delay(10);
        }

        return true;
    }
}
