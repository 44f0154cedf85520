using Isthmus.ControlPlane.Mobility;

namespace Isthmus.ControlPlane.Tests.Mobility;

/// <summary>
/// The runtime's suspensions as the mobility latency view reports them (issue 6's tail suspects): a forced collection
/// suspends every managed thread, so it must show up, with its reason, a non-negative duration and a start near now.
/// </summary>
public sealed class RuntimeSuspensionsTests
{
    [Fact]
    public async Task A_forced_collection_is_seen_as_a_gc_suspension()
    {
        var listener = RuntimeSuspensions.Shared;
        var before = DateTime.UtcNow.AddSeconds(-1);

        // The runtime delivers its events on its own dispatch thread: collect and wait (bounded) until one arrived.
        IReadOnlyList<Suspension> seen = [];
        for (var i = 0; i < 200 && !seen.Any(s => s.Reason == "gc"); i++)
        {
            GC.Collect();
            await Task.Delay(50);
            seen = listener.Since(before);
        }

        var gc = Assert.Single(seen.Where(s => s.Reason == "gc").Take(1));
        Assert.True(gc.Ms >= 0, $"duration {gc.Ms} ms");
        Assert.InRange(gc.StartUtc, before, DateTime.UtcNow.AddSeconds(1));
        var (count, totalMs) = listener.Totals();
        Assert.True(count >= 1 && totalMs >= gc.Ms);
        Assert.Empty(listener.Since(DateTime.UtcNow.AddMinutes(1)));
    }

    [Theory]
    [InlineData(0, "other")]
    [InlineData(1, "gc")]
    [InlineData(6, "gc prep")]
    [InlineData(42, "reason 42")]
    public void Reasons_are_named_after_the_runtime_manifest(int reason, string name) =>
        Assert.Equal(name, RuntimeSuspensions.ReasonName(reason));
}
