namespace Isthmus.DataPlane.Diagnostics;

/// <summary>
/// Per-worker drop counters, one row per stage and one column per drop reason. Written only by the
/// owning worker; readers sum over workers and accept slightly stale values.
/// </summary>
public sealed class StageCounters
{
    private readonly long[][] _drops;

    public StageCounters(IReadOnlyList<int> reasonsPerStage)
    {
        _drops = new long[reasonsPerStage.Count][];
        for (var i = 0; i < _drops.Length; i++)
        {
            _drops[i] = new long[reasonsPerStage[i]];
        }
    }

    /// <summary>Packets the pipeline finished with no verdict (a composition bug, never expected).</summary>
    public long Unclaimed;

    /// <summary>Batches run, and packets in them.</summary>
    public long Batches;
    public long Packets;

    public void CountDrop(int stage, int reason) => _drops[stage][reason]++;

    public long Drops(int stage, int reason) => Volatile.Read(ref _drops[stage][reason]);
}
