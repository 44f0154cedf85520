using System.Net;
using Isthmus.ControlPlane.Config;
using Isthmus.ControlPlane.Runtime;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Programming;
using Microsoft.Extensions.Logging;

namespace Isthmus.Host.Hosting;

/// <summary>
/// Opens the real ports: AF_PACKET for trunk and access, a UDP socket for VXLAN, inside the data-plane
/// namespace when one is configured (sockets keep the namespace they were created in), so the API stays
/// in this one. A port that was asked for AF_XDP but fell back to its sockets is logged with the reason.
/// </summary>
public sealed class SocketPortFactory(ILogger<SocketPortFactory>? logger = null) : IPortFactory
{
    public IReadOnlyList<IPacketPort> Open(ConfigDocument document)
    {
        ArgumentNullException.ThrowIfNull(document);
        var settings = document.DataPlane;
        var ports = new List<IPacketPort>();
        // Enter, open, leave, all on this thread.
        using var scope = settings.Netns is { } netns ? NetworkNamespace.Enter(netns) : null;
        try
        {
            foreach (var spec in document.Program.Ports)
            {
                ports.Add(spec.Kind switch
                {
                    PortSpecKind.Vxlan => new VxlanUdpPort(new VxlanUdpPortOptions
                    {
                        Name = spec.Name,
                        LocalAddress = IPAddress.Parse(spec.LocalAddress!),
                        Port = (ushort)spec.UdpPort,
                        BatchSize = settings.RxBatch,
                        RawTransmit = settings.RawVxlanTransmit,
                        XdpTransmit = settings.XdpTransmit,
                        UdpGsoTransmit = settings.VxlanTransmit == DataPlaneSettings.VxlanTransmitUdpGso,
                        XdpReceive = settings.XdpVxlanReceive,
                        XdpRingFrames = settings.XdpRingFrames,
                    }),
                    _ => new AfPacketPort(new AfPacketPortOptions
                    {
                        Name = spec.Name,
                        InterfaceName = spec.Interface!,
                        Kind = spec.Kind == PortSpecKind.Trunk ? PortKind.Trunk : PortKind.Access,
                        BatchSize = settings.RxBatch,
                        XdpReceive = settings.XdpReceive && spec.Kind == PortSpecKind.Access,
                        XdpTransmit = settings.XdpTransmit && spec.Kind == PortSpecKind.Access,
                        XdpRingFrames = settings.XdpRingFrames,
                    }),
                });
            }
        }
        catch
        {
            foreach (var port in ports)
            {
                port.Dispose();
            }

            throw;
        }

        foreach (var port in ports)
        {
            var reason = port switch
            {
                AfPacketPort p => p.XdpError,
                VxlanUdpPort v => v.XdpError,
                _ => null,
            };
            if (reason is not null)
            {
                logger?.LogWarning("Port {Port}: AF_XDP is not available, the port uses its sockets: {Reason}", port.Name, reason);
            }
        }

        return ports;
    }
}
