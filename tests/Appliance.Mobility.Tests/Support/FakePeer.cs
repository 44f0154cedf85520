using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Isthmus.Mobility.Bgp.Codec;

namespace Isthmus.Mobility.Tests.Support;

/// <summary>A scripted BGP peer on loopback, speaking through the codec under test.</summary>
internal sealed class FakePeer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Channel<BgpMessage> _received = Channel.CreateUnbounded<BgpMessage>();
    private Socket? _socket;

    public FakePeer() => _listener.Start();

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Accepts the speaker, answers its OPEN, and confirms with a KEEPALIVE.</summary>
    public async Task<OpenMessage> AcceptAndOpenAsync(uint asn, ushort holdTime = 90, string identifier = "192.0.2.200")
    {
        await AcceptAsync();
        return await OpenAsync(asn, holdTime, identifier);
    }

    /// <summary>Accepts the speaker's connection (nothing said yet).</summary>
    public async Task AcceptAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        _socket = await _listener.AcceptSocketAsync(timeout.Token);
        _ = Task.Run(ReadAsync);
    }

    /// <summary>Connects to the speaker's listener, as a peer whose side is active.</summary>
    public async Task ConnectAsync(int port)
    {
        _socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await _socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        _ = Task.Run(ReadAsync);
    }

    /// <summary>Reads the speaker's OPEN and answers with ours (the speaker is then in OpenConfirm).</summary>
    public async Task<OpenMessage> SendOpenAsync(uint asn, ushort holdTime = 90, string identifier = "192.0.2.200")
    {
        var open = Assert.IsType<OpenMessage>(await NextAsync());
        await SendAsync(new OpenMessage
        {
            As = asn,
            HoldTime = holdTime,
            BgpIdentifier = IPAddress.Parse(identifier),
            Multiprotocol = [AfiSafi.Ipv4Unicast, AfiSafi.Ipv6Unicast],
            RouteRefresh = true,
            FourOctetAs = true,
        });
        return open;
    }

    /// <summary>The OPEN exchange on a connection already made, confirmed with a KEEPALIVE each way.</summary>
    public async Task<OpenMessage> OpenAsync(uint asn, ushort holdTime = 90, string identifier = "192.0.2.200")
    {
        var open = await SendOpenAsync(asn, holdTime, identifier);
        await SendAsync(KeepaliveMessage.Instance);
        Assert.IsType<KeepaliveMessage>(await NextAsync());
        return open;
    }

    public Task SendAsync(BgpMessage message) => SendAsync(message.Encode());

    public async Task SendAsync(byte[] wire) => await _socket!.SendAsync(wire, SocketFlags.None);

    /// <summary>The next message that is not a KEEPALIVE or an End-of-RIB (unless asked for).</summary>
    public async Task<BgpMessage> NextAsync(bool skipHousekeeping = false)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (true)
        {
            var message = await _received.Reader.ReadAsync(timeout.Token);
            if (skipHousekeeping && (message is KeepaliveMessage || message is UpdateMessage { IsEndOfRib: true }))
            {
                continue;
            }

            return message;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _socket?.Dispose();
        _listener.Stop();
        _listener.Dispose();
        await Task.CompletedTask;
    }

    private async Task ReadAsync()
    {
        var buffer = new byte[65536];
        var filled = 0;
        try
        {
            while (true)
            {
                var read = await _socket!.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None);
                if (read == 0)
                {
                    break;
                }

                filled += read;
                int length;
                while ((length = BgpMessage.FrameLength(buffer.AsSpan(0, filled), out _)) > 0)
                {
                    var result = BgpMessage.Decode(buffer.AsSpan(0, length));
                    _received.Writer.TryWrite(result.Message ?? throw new InvalidOperationException("speaker sent a bad message: " + result.Error));
                    buffer.AsSpan(length, filled - length).CopyTo(buffer);
                    filled -= length;
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        _received.Writer.TryComplete();
    }
}
