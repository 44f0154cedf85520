using System.Net;
using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Diagnostics;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Workers;
using Isthmus.Host.Configuration;

namespace Isthmus.Host.Hosting;

/// <summary>
/// Opens the ports (inside the data-plane namespace when one is configured, so the API stays in
/// this one), compiles the program, and runs the worker.
/// </summary>
public sealed partial class DataPlaneService(ApplianceConfig config, TimeProvider time, ILogger<DataPlaneService> logger) : IHostedService, IDisposable
{
    private readonly List<IPacketPort> _ports = [];

    public DataPlaneWorker Worker { get; private set; } = null!;

    public SnapshotSlot Slot { get; private set; } = null!;

    public PacketTracer Tracer { get; } = new();

    public MacMoveFeed Moves { get; } = new();

    public bool Forwarding { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var program = config.ToProgram();
        Slot = new SnapshotSlot(SnapshotCompiler.Compile(program, 1, time.TimestampFrequency));
        OpenPorts(program);
        Worker = new DataPlaneWorker(_ports, Slot, PacketPipeline.CreateDefault(), time, Tracer, Moves, config.DataPlane.PoolSize);
        Worker.Start();
        Forwarding = true;
        LogForwarding(logger, _ports.Count, program.BridgeDomains.Count, config.DataPlane.Netns ?? "(own)");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Forwarding = false;
        Worker?.Stop();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        Worker?.Dispose();
        foreach (var port in _ports)
        {
            port.Dispose();
        }
    }

    private void OpenPorts(DataPlaneProgram program)
    {
        // Sockets keep the namespace they were created in: enter, open, leave, all on this thread.
        using var scope = config.DataPlane.Netns is { } netns ? NetworkNamespace.Enter(netns) : null;
        foreach (var spec in program.Ports)
        {
            _ports.Add(spec.Kind switch
            {
                PortSpecKind.Vxlan => new VxlanUdpPort(new VxlanUdpPortOptions
                {
                    Name = spec.Name,
                    LocalAddress = IPAddress.Parse(spec.LocalAddress!),
                    Port = (ushort)spec.UdpPort,
                    BatchSize = config.DataPlane.RxBatch,
                }),
                _ => new AfPacketPort(new AfPacketPortOptions
                {
                    Name = spec.Name,
                    InterfaceName = spec.Interface!,
                    Kind = spec.Kind == PortSpecKind.Trunk ? PortKind.Trunk : PortKind.Access,
                    BatchSize = config.DataPlane.RxBatch,
                }),
            });
        }
    }

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Data plane forwarding: {Ports} ports, {Domains} bridge domains, namespace {Netns}")]
    private static partial void LogForwarding(ILogger logger, int ports, int domains, string netns);
}
