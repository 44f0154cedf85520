using System.Text.Json.Nodes;
using BenchmarkDotNet.Attributes;
using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Store;
using Isthmus.DataPlane.Programming;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isthmus.Benchmarks;

/// <summary>
/// Issue 4: committing 10,000 firewall rules must take ≤ 100 ms to validate, compile and swap.
/// <see cref="ValidateCompileSwap"/> is that path (parse the document, control-plane rules,
/// SnapshotCompiler, one SnapshotSlot.Publish); <see cref="CommitWithStore"/> adds the SQLite revision
/// write, which happens before the swap but is not on the data plane's path.
/// </summary>
/// <remarks>Run: dotnet run -c Release --project tests/Appliance.Benchmarks -- --filter '*CommitBenchmarks*'</remarks>
[MemoryDiagnoser]
public class CommitBenchmarks : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("isthmus-bench-").FullName;
    private JsonObject[] _documents = [];
    private ConfigStore _store = null!;
    private ConfigService _service = null!;
    private SnapshotSlot _slot = null!;
    private int _next;

    [Params(10_000)]
    public int Rules { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _store = ConfigStore.Open(Path.Combine(_dir, "config.db"), TimeProvider.System);
        _service = new ConfigService(_store, TimeProvider.System, NullLogger<ConfigService>.Instance);
        _slot = new SnapshotSlot(SnapshotCompiler.Compile(new DataPlaneProgram(), 0, TimeProvider.System.TimestampFrequency));
        _service.Attach(new SlotTarget(_slot), _ => { });
        _documents = [Document(Rules, 0), Document(Rules, 1)];
        var first = _service.Commit(_documents[1], "base", null, Actor.System);
        if (!first.Ok)
        {
            throw new InvalidOperationException(string.Join("\n", first.Errors.Take(5)));
        }
    }

    [Benchmark]
    public DataPlaneSnapshot ValidateCompileSwap()
    {
        var document = ConfigDocumentJson.Parse(_documents[_next++ & 1]).Document!;
        ConfigValidator.Validate(document, requireAdmin: false);
        SnapshotCompiler.TryCompile(document.Program, _next, TimeProvider.System.TimestampFrequency, out var snapshot, out _);
        _slot.Publish(snapshot!);
        return snapshot!;
    }

    [Benchmark]
    public long CommitWithStore() => _service.Commit(_documents[_next++ & 1], "bench", null, Actor.System).Revision!.Id;

    [GlobalCleanup]
    public void Dispose()
    {
        _service?.Dispose();
        _store?.Dispose();
        Directory.Delete(_dir, recursive: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>The lab's bd10 with zones on acc10 and trunk0/vlan10 and <paramref name="rules"/> distinct TCP rules.</summary>
    public static JsonObject Document(int rules, int seed)
    {
        var list = new JsonArray();
        for (var i = 0; i < rules; i++)
        {
            var n = i + seed;
            list.Add(new JsonObject
            {
                ["id"] = i + 1,
                ["sources"] = new JsonArray($"10.{(n / 250) % 250}.{n % 250}.0/24"),
                ["protocol"] = "tcp",
                ["destinationPorts"] = new JsonArray((1024 + (n % 60000)).ToString(System.Globalization.CultureInfo.InvariantCulture)),
                ["action"] = i % 7 == 0 ? "drop" : "allow",
            });
        }

        return new JsonObject
        {
            ["ports"] = new JsonArray(
                new JsonObject { ["name"] = "und0", ["kind"] = "vxlan", ["localAddress"] = "192.0.2.1" },
                new JsonObject { ["name"] = "acc10", ["kind"] = "access", ["interface"] = "acc10" },
                new JsonObject { ["name"] = "trunk0", ["kind"] = "trunk", ["interface"] = "trunk0" }),
            ["bridgeDomains"] = new JsonArray(new JsonObject
            {
                ["name"] = "bd10",
                ["segments"] = new JsonArray(
                    new JsonObject { ["port"] = "acc10" },
                    new JsonObject { ["port"] = "trunk0", ["vlan"] = 10 },
                    new JsonObject { ["port"] = "und0", ["vni"] = 5010, ["vteps"] = new JsonArray("192.0.2.2") }),
            }),
            ["firewall"] = new JsonObject
            {
                ["zones"] = new JsonArray(
                    new JsonObject { ["name"] = "access", ["segments"] = new JsonArray("acc10") },
                    new JsonObject { ["name"] = "trunk", ["segments"] = new JsonArray("trunk0/vlan10") }),
                ["policies"] = new JsonArray(new JsonObject { ["from"] = "access", ["to"] = "trunk", ["rules"] = list }),
            },
        };
    }

    private sealed class SlotTarget(SnapshotSlot slot) : IDataPlaneTarget
    {
        public ConfigDocument? Started => null;

        public void Publish(DataPlaneSnapshot snapshot) => slot.Publish(snapshot);
    }
}
