using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Isthmus.ControlPlane.Logging;

/// <summary>
/// The data plane's logging path: a token bucket per EventId, so a MAC-flap storm or a flood of bad
/// frames writes a bounded number of lines and then one "N suppressed" line, never one per packet.
/// </summary>
/// <remarks>Thread-safe; one lock per EventId, taken only when something would be logged.</remarks>
public sealed partial class RateLimitedLog(ILogger logger, TimeProvider time, int burst = 10, double perSecond = 1)
{
    private readonly ConcurrentDictionary<int, Bucket> _buckets = new();

    public long Suppressed => _buckets.Values.Sum(b => b.TotalSuppressed);

    /// <summary>Logs through <paramref name="write"/> when the EventId's bucket has a token; otherwise counts it.</summary>
    public bool TryLog<TState>(int eventId, TState state, Action<ILogger, TState> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var bucket = _buckets.GetOrAdd(eventId, _ => new Bucket(burst, time.GetTimestamp()));
        long suppressed;
        lock (bucket)
        {
            var now = time.GetTimestamp();
            var elapsed = (now - bucket.Last) / (double)time.TimestampFrequency;
            bucket.Last = now;
            bucket.Tokens = Math.Min(burst, bucket.Tokens + (elapsed * perSecond));
            if (bucket.Tokens < 1)
            {
                bucket.Pending++;
                bucket.TotalSuppressed++;
                return false;
            }

            bucket.Tokens -= 1;
            suppressed = bucket.Pending;
            bucket.Pending = 0;
        }

        if (suppressed > 0)
        {
            LogSuppressed(logger, suppressed, eventId);
        }

        write(logger, state);
        return true;
    }

    [LoggerMessage(EventId = LogEvents.RateLimitedSuppressed, Level = LogLevel.Warning, Message = "{Count} log lines of event {SuppressedEventId} were suppressed by the rate limit")]
    private static partial void LogSuppressed(ILogger logger, long count, int suppressedEventId);

    private sealed class Bucket(double tokens, long last)
    {
        public double Tokens = tokens;
        public long Last = last;
        public long Pending;
        public long TotalSuppressed;
    }
}
