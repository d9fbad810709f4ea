package dev.hotpatch.reactnative

import android.content.Context
import android.content.Intent
import android.content.pm.PackageInfo
import android.content.pm.PackageManager
import android.content.res.AssetManager
import com.facebook.react.bridge.Promise
import com.facebook.react.bridge.ReactApplicationContext
import com.facebook.react.bridge.ReadableMap
import com.facebook.react.bridge.WritableMap
import java.io.ByteArrayInputStream
import java.io.File
import java.io.FileNotFoundException
import java.io.InputStream

/*
 * Fakes of what Android and React Native give the adapter (the stubs' types),
 * shared by HotPatchModuleTest and DeviceHost.
 */

/** An app process as MainApplication sees it: private files, assets, its package and version. */
internal class FakeApp(
    private val files: File,
    private val assets: Map<String, ByteArray>,
    private val versionName: String = "1.2.3",
    private val packageName: String = "com.example.app",
) : Context() {
    /** The activities the app asked Android to start (restartApp starts one). */
    val started = mutableListOf<Intent>()

    override fun getFilesDir(): File = files

    override fun getAssets(): AssetManager = object : AssetManager() {
        override fun open(fileName: String): InputStream =
            ByteArrayInputStream(assets[fileName] ?: throw FileNotFoundException(fileName))
    }

    override fun getPackageName(): String = packageName

    override fun getPackageManager(): PackageManager = object : PackageManager() {
        override fun getPackageInfo(packageName: String, flags: Int) = PackageInfo().apply { versionName = this@FakeApp.versionName }

        override fun getLaunchIntentForPackage(packageName: String) = Intent()
    }

    override fun getApplicationContext(): Context = this

    override fun startActivity(intent: Intent) {
        started.add(intent)
    }
}

/** React Native's context, which hands device events to [onEmit]. */
internal class FakeReactContext(base: Context, private val onEmit: (String, Any?) -> Unit = { _, _ -> }) :
    ReactApplicationContext(base) {
    val emitted = mutableListOf<Pair<String, Any?>>()

    override fun emitDeviceEvent(eventName: String, data: Any?) {
        emitted.add(eventName to data)
        onEmit(eventName, data)
    }
}

/** React Native's maps, as plain maps. */
internal class FakeMap : WritableMap {
    val values = LinkedHashMap<String, Any?>()

    override fun hasKey(name: String) = name in values

    override fun getString(name: String) = values[name] as String?

    override fun putBoolean(key: String, value: Boolean) = values.set(key, value)

    override fun putDouble(key: String, value: Double) = values.set(key, value)

    override fun putMap(key: String, value: ReadableMap?) = values.set(key, value)

    override fun putNull(key: String) = values.set(key, null)

    override fun putString(key: String, value: String?) = values.set(key, value)
}

/** A promise that keeps how it was settled, and tells [onSettle]. */
internal class FakePromise(private val onSettle: (FakePromise) -> Unit = {}) : Promise {
    var resolved: Any? = null
    var done = false
    var code: String? = null
    var message: String? = null
    var reason: String? = null

    override fun resolve(value: Any?) {
        resolved = value
        done = true
        onSettle(this)
    }

    override fun reject(code: String, message: String?, userInfo: WritableMap?) {
        this.code = code
        this.message = message
        reason = (userInfo as FakeMap?)?.getString("reason")
        done = true
        onSettle(this)
    }
}
