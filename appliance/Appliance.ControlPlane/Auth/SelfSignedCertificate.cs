using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Isthmus.ControlPlane.Logging;
using Microsoft.Extensions.Logging;

namespace Isthmus.ControlPlane.Auth;

/// <summary>
/// TLS without a configured certificate: generate a self-signed one (ECDSA P-256, SAN with the host
/// name, localhost and 127.0.0.1) once, persist it as PKCS#12 beside the store, and reuse it, so its
/// fingerprint stays stable for operators who pin it.
/// </summary>
public static partial class SelfSignedCertificate
{
    public static X509Certificate2 LoadOrCreate(string path, TimeProvider time, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        if (File.Exists(path))
        {
            var existing = X509CertificateLoader.LoadPkcs12FromFile(path, null);
            LogLoaded(logger, path, existing.Thumbprint);
            return existing;
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var host = Dns.GetHostName();
        var request = new CertificateRequest($"CN={host}, O=Isthmus appliance", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(host);
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var now = time.GetUtcNow();
        using var certificate = request.CreateSelfSigned(now.AddDays(-1), now.AddYears(5));
        var pfx = certificate.Export(X509ContentType.Pkcs12);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllBytes(path, pfx);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        var loaded = X509CertificateLoader.LoadPkcs12(pfx, null);
        LogGenerated(logger, path, loaded.Thumbprint);
        return loaded;
    }

    [LoggerMessage(EventId = LogEvents.CertificateGenerated, Level = LogLevel.Warning, Message = "No TLS certificate configured: generated a self-signed one at {Path} (SHA-1 thumbprint {Thumbprint})")]
    private static partial void LogGenerated(ILogger logger, string path, string thumbprint);

    [LoggerMessage(EventId = LogEvents.CertificateLoaded, Level = LogLevel.Information, Message = "TLS certificate {Path} (thumbprint {Thumbprint})")]
    private static partial void LogLoaded(ILogger logger, string path, string thumbprint);
}
