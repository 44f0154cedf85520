namespace Isthmus.Testing;

/// <summary>Bytes allocated by a steady-state path, measured so that only the path's own allocations count.</summary>
public static class Allocations
{
    /// <summary>
    /// The fewest bytes this thread allocated over up to <paramref name="rounds"/> runs of <paramref name="body"/>
    /// (it stops at a run that allocated nothing). The runtime now and then allocates on the calling thread once, in
    /// the middle of a loop (a tier-up or OSR compilation landing there: 2,152 bytes once in a CI run of a million
    /// Maglev lookups); an allocation of the path itself recurs in every run and still fails the test.
    /// </summary>
    public static long FewestBytes(Action body, int rounds = 3)
    {
        ArgumentNullException.ThrowIfNull(body);
        var fewest = long.MaxValue;
        for (var round = 0; round < rounds && fewest != 0; round++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            body();
            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        return fewest;
    }
}
