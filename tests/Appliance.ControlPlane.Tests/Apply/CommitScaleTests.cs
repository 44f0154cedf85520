using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Tests.Support;
using Isthmus.DataPlane.Programming;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Isthmus.ControlPlane.Tests.Apply;

/// <summary>
/// Issue 4: a commit of 10,000 firewall rules. This test proves it is accepted, compiled and published
/// whole, and guards against gross regressions; the ≤ 100 ms budget itself is measured by
/// tests/Appliance.Benchmarks (CommitBenchmarks), on a quiet machine, where timing means something.
/// </summary>
public sealed class CommitScaleTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Ten_thousand_firewall_rules_are_committed_and_swapped_whole()
    {
        using var store = _dir.OpenStore(TimeProvider.System);
        using var service = new ConfigService(store, TimeProvider.System, NullLogger<ConfigService>.Instance);
        var slot = new SnapshotSlot(SnapshotCompiler.Compile(new DataPlaneProgram(), 0, TimeProvider.System.TimestampFrequency));
        service.Attach(new SlotTarget(slot), _ => { });
        Assert.True(service.Commit(Documents.Lab(), "base", null, Actor.System).Ok);

        var times = new List<double>();
        for (var round = 0; round < 5; round++)
        {
            var outcome = service.Commit(Documents.WithFirewall(Documents.Lab(credentials: false), 10_000, seed: round), $"10k rules #{round}", null, Actor.System);
            Assert.True(outcome.Ok, string.Join("\n", outcome.Errors.Take(5)));
            Assert.Equal(outcome.Revision!.Id, slot.Current.Version);
            Assert.Equal(10_000, service.Current.Document.Program.Firewall.Policies[0].Rules.Count);
            times.Add(outcome.CompileAndSwap.TotalMilliseconds);
        }

        output.WriteLine($"validate+compile+swap of 10,000 rules: {string.Join(", ", times.Select(t => t.ToString("F1", System.Globalization.CultureInfo.InvariantCulture)))} ms");
        // The first round pays for JIT; the steady state is what an operator's commit costs.
        var steady = times.Skip(1).Order().ToList();
        Assert.True(steady[steady.Count / 2] <= 2000, $"median {steady[steady.Count / 2]:F1} ms ({string.Join(", ", times)})");
    }

    private sealed class SlotTarget(SnapshotSlot slot) : IDataPlaneTarget
    {
        public ConfigDocument? Started => null;

        public void Publish(DataPlaneSnapshot snapshot) => slot.Publish(snapshot);
    }
}
