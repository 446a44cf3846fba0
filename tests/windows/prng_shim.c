/* Test infrastructure only, never part of the crate.
 *
 * Rust's standard library for Windows draws its random numbers (HashMap
 * keys, among others) from ProcessPrng in bcryptprimitives.dll. Wine 8
 * has no ProcessPrng, so every Rust program dies at start there with
 * STATUS_DLL_NOT_FOUND (c0000135). This DLL provides it on top of
 * RtlGenRandom (exported by advapi32 as SystemFunction036), which Wine has.
 * setup.sh builds it with mingw and puts it in the Wine prefix's system32.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
