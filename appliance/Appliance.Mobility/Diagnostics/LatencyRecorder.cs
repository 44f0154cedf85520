using System.Diagnostics;

namespace Isthmus.Mobility.Diagnostics;

/// <summary>
/// One hop's latency: the last <see cref="Window"/> samples (Stopwatch ticks from a cause, such as the
/// worker seeing a RARP, to this hop) in a ring, so the API can show exact recent percentiles. Record from
/// any thread (one interlocked increment, no lock, no allocation); <see cref="Read"/> copies and sorts.
/// </summary>
public sealed class LatencyRecorder(string name)
{
    public const int Window = 2048;

    private readonly long[] _samples = new long[Window];
    private long _count;

    public string Name { get; } = name;

    /// <summary>How many samples were ever recorded.</summary>
    public long Count => Volatile.Read(ref _count);

    /// <summary>Records the time from <paramref name="since"/> to now (<see cref="Stopwatch.GetTimestamp"/> ticks); a zero cause is not recorded.</summary>
    public void RecordSince(long since)
    {
        if (since != 0)
        {
            Record(Stopwatch.GetTimestamp() - since);
        }
    }

    /// <summary>Records one elapsed time in Stopwatch ticks (negative values count as zero).</summary>
    public void Record(long elapsedTicks)
    {
        var slot = Interlocked.Increment(ref _count) - 1;
        Volatile.Write(ref _samples[slot % Window], Math.Max(0, elapsedTicks));
    }

    /// <summary>Percentiles over the samples still in the window (microseconds).</summary>
    public LatencySummary Read()
    {
        var count = Count;
        var n = (int)Math.Min(count, Window);
        if (n == 0)
        {
            return new LatencySummary(Name, 0, 0, 0, 0, 0);
        }

        var copy = new long[n];
        for (var i = 0; i < n; i++)
        {
            copy[i] = Volatile.Read(ref _samples[i]);
        }

        Array.Sort(copy);
        return new LatencySummary(Name, count, n, Micros(Percentile(copy, 0.50)), Micros(Percentile(copy, 0.99)), Micros(copy[^1]));
    }

    /// <summary>Forgets every sample (a benchmark starts from a clean window).</summary>
    public void Reset()
    {
        Array.Clear(_samples);
        Volatile.Write(ref _count, 0);
    }

    // Nearest rank: the smallest sample with at least p of the samples at or below it.
    private static long Percentile(long[] sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];

    private static double Micros(long ticks) => Math.Round(ticks * 1_000_000.0 / Stopwatch.Frequency, 1);
}

/// <param name="Count">Samples ever recorded.</param>
/// <param name="Samples">Samples the percentiles are computed over (the most recent, at most <see cref="LatencyRecorder.Window"/>).</param>
public sealed record LatencySummary(string Hop, long Count, int Samples, double P50Us, double P99Us, double MaxUs);
