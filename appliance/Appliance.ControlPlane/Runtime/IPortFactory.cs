using Isthmus.ControlPlane.Config;
using Isthmus.DataPlane.Io;

namespace Isthmus.ControlPlane.Runtime;

/// <summary>
/// Opens the data plane's ports for a document: sockets in the configured namespace on the appliance
/// (the host's factory), in-memory ports in tests. The seam Katran would have put an <c>if (testing)</c> in.
/// </summary>
public interface IPortFactory
{
    IReadOnlyList<IPacketPort> Open(ConfigDocument document);
}
