/* vw_gpu.c: the viewer's Vulkan side (vw_gpu.h). Vulkan 1.0 core plus VK_KHR_surface /
 * VK_KHR_swapchain for a window and VK_EXT_debug_utils for validation; nothing newer, so that
 * any driver (llvmpipe included) runs it. */
#ifdef VW_PIN_LIBRARIES
#define _GNU_SOURCE /* dl_iterate_phdr, RTLD_NODELETE */
#include <dlfcn.h>
#include <link.h>
#else
#define _POSIX_C_SOURCE 200809L
#endif
#include "vw_gpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GLFW_INCLUDE_VULKAN
#include <GLFW/glfw3.h>
#include <vulkan/vulkan.h>

/* SPIR-V from glslc -mfmt=c (build directory). */
static const uint32_t quad_vert_spv[] =
#include "quad_vert.spv.h"
    ;
static const uint32_t quad_frag_spv[] =
#include "quad_frag.spv.h"
    ;
static const uint32_t mesh_vert_spv[] =
#include "mesh_vert.spv.h"
    ;
static const uint32_t mesh_frag_spv[] =
#include "mesh_frag.spv.h"
    ;

#define COLOR_FORMAT VK_FORMAT_R8G8B8A8_UNORM
#define MAX_SWAP     8

typedef struct gpu_buf {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size;
    void *map;
} gpu_buf;

typedef struct gpu_tex {
    VkImage image;
    VkDeviceMemory mem;
    VkImageView view;
    VkDescriptorSet set;
    int64_t w, h;
} gpu_tex;

typedef struct mesh_vertex { /* the mesh pipeline's vertex layout, 28 bytes */
    float pos[3];
    float nrm[3];
    uint8_t rgba[4];
} mesh_vertex;

typedef struct mesh_push { /* matches mesh.vert / mesh.frag */
    float mvp[16];
    float eye[4];
    float params[4];
} mesh_push;

struct vw_gpu {
    int64_t *validation_count;
    GLFWwindow *window;
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkSurfaceKHR surface;
    VkPhysicalDevice phys;
    VkPhysicalDeviceMemoryProperties mem_props;
    char name[300];
    uint32_t qfam;
    VkDevice dev;
    VkQueue queue;
    VkCommandPool pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkFormat depth_format;
    VkRenderPass pass;
    VkDescriptorSetLayout set_layout;
    VkDescriptorPool desc_pool;
    VkSampler sampler;
    VkPipelineLayout quad_layout, mesh_layout;
    VkPipeline quad_pipe, mesh_pipe;
    /* offscreen target */
    int64_t w, h;
    VkImage color, depth;
    VkDeviceMemory color_mem, depth_mem;
    VkImageView color_view, depth_view;
    VkFramebuffer fb;
    gpu_buf readback;
    /* textures and mesh */
    gpu_tex tex[VW_GPU_TEX_COUNT];
    gpu_buf staging;
    gpu_buf vbuf, ibuf;
    int64_t n_indices;
    /* swapchain */
    VkSwapchainKHR swap;
    VkFormat swap_format;
    VkExtent2D swap_extent;
    uint32_t n_swap;
    VkImage swap_images[MAX_SWAP];
    VkSemaphore acquired;
    VkSemaphore rendered[MAX_SWAP];
    int swap_blit; /* 1: vkCmdBlitImage, 0: vkCmdCopyImage (same format, no blit support) */
};

static const char *vk_result_name(VkResult r) {
    switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_SUBOPTIMAL_KHR: return "VK_SUBOPTIMAL_KHR";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_SURFACE_LOST_KHR: return "VK_ERROR_SURFACE_LOST_KHR";
    case VK_ERROR_NATIVE_WINDOW_IN_USE_KHR: return "VK_ERROR_NATIVE_WINDOW_IN_USE_KHR";
    case VK_ERROR_OUT_OF_DATE_KHR: return "VK_ERROR_OUT_OF_DATE_KHR";
    default: return "VkResult (other)";
    }
}

/* Sets err for a failed call and jumps to done (every function here has rc and done:). */
#define VK_TRY(call)                                                                               \
    do {                                                                                           \
        VkResult vk_r_ = (call);                                                                   \
        if (vk_r_ != VK_SUCCESS) {                                                                 \
            rc = eng_err_set(                                                                      \
                err,                                                                               \
                vk_r_ == VK_ERROR_OUT_OF_HOST_MEMORY || vk_r_ == VK_ERROR_OUT_OF_DEVICE_MEMORY     \
                    ? ENG_E_OOM                                                                    \
                    : ENG_E_DEVICE,                                                                \
                "vw_gpu: %s failed: %s (%d)", #call, vk_result_name(vk_r_), (int)vk_r_);           \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

/* ---- validation messages -------------------------------------------------------------------- */

static VKAPI_ATTR VkBool32 VKAPI_CALL
on_debug_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                 VkDebugUtilsMessageTypeFlagsEXT types,
                 const VkDebugUtilsMessengerCallbackDataEXT *data,
                 void *user) {
    int64_t *count = user;
    const char *id = data->pMessageIdName != NULL ? data->pMessageIdName : "";
    /* The loader reports through the same messenger (e.g. an ICD file for hardware that is not
     * there): shown, not counted, since they are not about this program's use of Vulkan. */
    const int from_loader = strcmp(id, "Loader Message") == 0;
    const char *kind =
        from_loader                                                 ? "Vulkan loader"
        : (types & VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT)  ? "Vulkan validation"
        : (types & VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT) ? "Vulkan performance"
                                                                    : "Vulkan";
    fprintf(stderr, "viewer: %s %s: %s\n", kind,
            severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? "error" : "warning",
            data->pMessage != NULL ? data->pMessage : id);
    if (!from_loader && count != NULL) (*count)++;
    return VK_FALSE;
}

static void messenger_info(VkDebugUtilsMessengerCreateInfoEXT *mi, int64_t *count) {
    memset(mi, 0, sizeof *mi);
    mi->sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
    mi->messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                          VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    mi->messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                      VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                      VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
    mi->pfnUserCallback = on_debug_message;
    mi->pUserData = count;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static int find_memory(const vw_gpu *g, uint32_t bits, VkMemoryPropertyFlags want, uint32_t *out) {
    for (uint32_t i = 0; i < g->mem_props.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (g->mem_props.memoryTypes[i].propertyFlags & want) == want) {
            *out = i;
            return 0;
        }
    return -1;
}

static int alloc_memory(vw_gpu *g,
                        VkDeviceMemory *mem,
                        VkMemoryRequirements req,
                        VkMemoryPropertyFlags want,
                        const char *what,
                        eng_err *err) {
    int rc = ENG_OK;
    uint32_t type = 0;
    if (find_memory(g, req.memoryTypeBits, want, &type) != 0) {
        rc = eng_err_set(err, ENG_E_DEVICE, "vw_gpu: no memory type for %s (flags 0x%x)", what,
                         (unsigned)want);
        goto done;
    }
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                               .allocationSize = req.size,
                               .memoryTypeIndex = type};
    VK_TRY(vkAllocateMemory(g->dev, &ai, NULL, mem));
done:
    return rc;
}

static void buf_destroy(vw_gpu *g, gpu_buf *b) {
    if (b->map != NULL) vkUnmapMemory(g->dev, b->mem);
    if (b->buf != VK_NULL_HANDLE) vkDestroyBuffer(g->dev, b->buf, NULL);
    if (b->mem != VK_NULL_HANDLE) vkFreeMemory(g->dev, b->mem, NULL);
    memset(b, 0, sizeof *b);
}

/* A host-visible, coherent, mapped buffer of at least `size` bytes (kept when big enough). */
static int buf_ensure(vw_gpu *g,
                      gpu_buf *b,
                      VkDeviceSize size,
                      VkBufferUsageFlags usage,
                      const char *what,
                      eng_err *err) {
    int rc = ENG_OK;
    if (b->buf != VK_NULL_HANDLE && b->size >= size) return ENG_OK;
    buf_destroy(g, b);
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                             .size = size,
                             .usage = usage,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VK_TRY(vkCreateBuffer(g->dev, &bi, NULL, &b->buf));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(g->dev, b->buf, &req);
    rc = alloc_memory(g, &b->mem, req,
                      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                      what, err);
    if (rc != ENG_OK) goto done;
    VK_TRY(vkBindBufferMemory(g->dev, b->buf, b->mem, 0));
    VK_TRY(vkMapMemory(g->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map));
    b->size = size;
done:
    if (rc != ENG_OK) buf_destroy(g, b);
    return rc;
}

static int image_create(vw_gpu *g,
                        VkImage *image,
                        VkDeviceMemory *mem,
                        VkImageView *view,
                        VkFormat format,
                        VkImageUsageFlags usage,
                        VkImageAspectFlags aspect,
                        int64_t w,
                        int64_t h,
                        const char *what,
                        eng_err *err) {
    int rc = ENG_OK;
    VkImageCreateInfo ii = {.sType = VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO,
                            .imageType = VK_IMAGE_TYPE_2D,
                            .format = format,
                            .extent = {(uint32_t)w, (uint32_t)h, 1},
                            .mipLevels = 1,
                            .arrayLayers = 1,
                            .samples = VK_SAMPLE_COUNT_1_BIT,
                            .tiling = VK_IMAGE_TILING_OPTIMAL,
                            .usage = usage,
                            .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
                            .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED};
    VK_TRY(vkCreateImage(g->dev, &ii, NULL, image));
    VkMemoryRequirements req;
    vkGetImageMemoryRequirements(g->dev, *image, &req);
    rc = alloc_memory(g, mem, req, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, what, err);
    if (rc != ENG_OK) goto done;
    VK_TRY(vkBindImageMemory(g->dev, *image, *mem, 0));
    VkImageViewCreateInfo vi = {.sType = VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO,
                                .image = *image,
                                .viewType = VK_IMAGE_VIEW_TYPE_2D,
                                .format = format,
                                .subresourceRange = {aspect, 0, 1, 0, 1}};
    VK_TRY(vkCreateImageView(g->dev, &vi, NULL, view));
done:
    return rc;
}

static void barrier(VkCommandBuffer cmd,
                    VkImage image,
                    VkImageAspectFlags aspect,
                    VkImageLayout from,
                    VkImageLayout to,
                    VkAccessFlags src_access,
                    VkAccessFlags dst_access,
                    VkPipelineStageFlags src_stage,
                    VkPipelineStageFlags dst_stage) {
    VkImageMemoryBarrier b = {.sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER,
                              .srcAccessMask = src_access,
                              .dstAccessMask = dst_access,
                              .oldLayout = from,
                              .newLayout = to,
                              .srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
                              .dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
                              .image = image,
                              .subresourceRange = {aspect, 0, 1, 0, 1}};
    vkCmdPipelineBarrier(cmd, src_stage, dst_stage, 0, 0, NULL, 0, NULL, 1, &b);
}

static int cmd_begin(vw_gpu *g, eng_err *err) {
    int rc = ENG_OK;
    VK_TRY(vkResetCommandBuffer(g->cmd, 0));
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VK_TRY(vkBeginCommandBuffer(g->cmd, &bi));
done:
    return rc;
}

/* Ends, submits and waits for the command buffer. */
static int cmd_submit_wait(vw_gpu *g,
                           VkSemaphore wait,
                           VkPipelineStageFlags wait_stage,
                           VkSemaphore signal,
                           eng_err *err) {
    int rc = ENG_OK;
    VK_TRY(vkEndCommandBuffer(g->cmd));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                       .waitSemaphoreCount = wait != VK_NULL_HANDLE ? 1 : 0,
                       .pWaitSemaphores = &wait,
                       .pWaitDstStageMask = &wait_stage,
                       .commandBufferCount = 1,
                       .pCommandBuffers = &g->cmd,
                       .signalSemaphoreCount = signal != VK_NULL_HANDLE ? 1 : 0,
                       .pSignalSemaphores = &signal};
    VK_TRY(vkResetFences(g->dev, 1, &g->fence));
    VK_TRY(vkQueueSubmit(g->queue, 1, &si, g->fence));
    VK_TRY(vkWaitForFences(g->dev, 1, &g->fence, VK_TRUE, UINT64_MAX));
done:
    return rc;
}

static int
shader_module(vw_gpu *g, VkShaderModule *out, const uint32_t *code, size_t bytes, eng_err *err) {
    int rc = ENG_OK;
    VkShaderModuleCreateInfo si = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = bytes, .pCode = code};
    VK_TRY(vkCreateShaderModule(g->dev, &si, NULL, out));
done:
    return rc;
}

/* ---- instance and device -------------------------------------------------------------------- */

static int has_layer(const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return 0;
    VkLayerProperties *props = calloc(n, sizeof *props);
    int found = 0;
    if (props != NULL && vkEnumerateInstanceLayerProperties(&n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(props[i].layerName, name) == 0;
    free(props);
    return found;
}

static int no_device(eng_err *err, const char *why) {
    return eng_err_set(err, ENG_E_DEVICE,
                       "no Vulkan device found (%s; install mesa-vulkan-drivers for a software "
                       "device)",
                       why);
}

static int create_instance(vw_gpu *g, const vw_gpu_params *p, eng_err *err) {
    int rc = ENG_OK;
    const char *exts[16];
    uint32_t n_exts = 0;
    const char *layers[1];
    uint32_t n_layers = 0;
    VkDebugUtilsMessengerCreateInfoEXT mi;
    if (g->window != NULL) {
        uint32_t n = 0;
        const char **req = glfwGetRequiredInstanceExtensions(&n);
        if (req == NULL || n > 8) {
            rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                             "no Vulkan window support (GLFW found no surface extensions: is a "
                             "Vulkan driver installed? Try --headless)");
            goto done;
        }
        for (uint32_t i = 0; i < n; i++)
            exts[n_exts++] = req[i];
    }
    if (p->validate) {
        if (!has_layer("VK_LAYER_KHRONOS_validation")) {
            rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                             "--validate: VK_LAYER_KHRONOS_validation is not installed (Debian: "
                             "vulkan-validationlayers)");
            goto done;
        }
        layers[n_layers++] = "VK_LAYER_KHRONOS_validation";
        exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
        messenger_info(&mi, g->validation_count);
    }
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "viewer",
                             .pEngineName = "engine",
                             .apiVersion = VK_API_VERSION_1_0};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .pNext = p->validate ? &mi : NULL,
                               .pApplicationInfo = &app,
                               .enabledLayerCount = n_layers,
                               .ppEnabledLayerNames = layers,
                               .enabledExtensionCount = n_exts,
                               .ppEnabledExtensionNames = exts};
    const VkResult r = vkCreateInstance(&ci, NULL, &g->instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED) {
        rc = no_device(err, r == VK_ERROR_INCOMPATIBLE_DRIVER ? "no driver (ICD)"
                                                              : "the loader failed to start");
        goto done;
    }
    if (r == VK_ERROR_EXTENSION_NOT_PRESENT) {
        rc = eng_err_set(
            err, ENG_E_UNSUPPORTED, "vw_gpu: vkCreateInstance: an extension is missing (%s%s)",
            g->window != NULL ? "window surface" : "", p->validate ? ", debug utils" : "");
        goto done;
    }
    VK_TRY(r);
    if (p->validate) {
        PFN_vkCreateDebugUtilsMessengerEXT create =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
                g->instance, "vkCreateDebugUtilsMessengerEXT");
        if (create == NULL) {
            rc = eng_err_set(err, ENG_E_UNSUPPORTED, "vw_gpu: no vkCreateDebugUtilsMessengerEXT");
            goto done;
        }
        VK_TRY(create(g->instance, &mi, NULL, &g->messenger));
    }
done:
    return rc;
}

static int device_rank(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

static const char *device_type_name(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
    }
}

/* A graphics queue family (that can present to the surface, with a window) and the swapchain
 * extension; returns the family or -1. */
static int64_t device_queue(const vw_gpu *g, VkPhysicalDevice pd) {
    if (g->surface != VK_NULL_HANDLE) {
        uint32_t n = 0;
        int swap = 0;
        vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL);
        VkExtensionProperties *ext = calloc(n ? n : 1, sizeof *ext);
        if (ext == NULL) return -1;
        if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, ext) == VK_SUCCESS)
            for (uint32_t i = 0; i < n; i++)
                swap |= strcmp(ext[i].extensionName, VK_KHR_SWAPCHAIN_EXTENSION_NAME) == 0;
        free(ext);
        if (!swap) return -1;
    }
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, NULL);
    VkQueueFamilyProperties *q = calloc(nq ? nq : 1, sizeof *q);
    int64_t found = -1;
    if (q == NULL) return -1;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, q);
    for (uint32_t i = 0; i < nq && found < 0; i++) {
        if (!(q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT) || q[i].queueCount == 0) continue;
        if (g->surface != VK_NULL_HANDLE) {
            VkBool32 ok = VK_FALSE;
            if (vkGetPhysicalDeviceSurfaceSupportKHR(pd, i, g->surface, &ok) != VK_SUCCESS || !ok)
                continue;
        }
        found = i;
    }
    free(q);
    return found;
}

static int pick_device(vw_gpu *g, int want, eng_err *err) {
    int rc = ENG_OK;
    uint32_t n = 0;
    VkPhysicalDevice *pds = NULL;
    VkResult r = vkEnumeratePhysicalDevices(g->instance, &n, NULL);
    if (r != VK_SUCCESS || n == 0) {
        rc = no_device(err, "the Vulkan loader lists no physical device");
        goto done;
    }
    pds = calloc(n, sizeof *pds);
    if (pds == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "vw_gpu: no memory");
        goto done;
    }
    r = vkEnumeratePhysicalDevices(g->instance, &n, pds);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) VK_TRY(r);
    if (want >= (int)n) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "--gpu %d: there are only %u Vulkan devices", want,
                         n);
        goto done;
    }
    int best = -1, best_rank = -1;
    int64_t best_q = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (want >= 0 && (int)i != want) continue;
        VkPhysicalDeviceProperties pr;
        vkGetPhysicalDeviceProperties(pds[i], &pr);
        const int64_t qf = device_queue(g, pds[i]);
        if (qf < 0) continue;
        const int rank = device_rank(pr.deviceType);
        if (rank > best_rank) {
            best = (int)i;
            best_rank = rank;
            best_q = qf;
        }
    }
    if (best < 0) {
        if (want >= 0)
            rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                             "--gpu %d: that Vulkan device has no graphics queue%s", want,
                             g->surface != VK_NULL_HANDLE ? " that can present to the window" : "");
        else
            rc = no_device(err, g->surface != VK_NULL_HANDLE
                                    ? "none has a graphics queue that can present to the window"
                                    : "none has a graphics queue");
        goto done;
    }
    g->phys = pds[best];
    g->qfam = (uint32_t)best_q;
    VkPhysicalDeviceProperties pr;
    vkGetPhysicalDeviceProperties(g->phys, &pr);
    snprintf(g->name, sizeof g->name, "%s (%s)", pr.deviceName, device_type_name(pr.deviceType));
    vkGetPhysicalDeviceMemoryProperties(g->phys, &g->mem_props);
done:
    free(pds);
    return rc;
}

static int create_device(vw_gpu *g, eng_err *err) {
    int rc = ENG_OK;
    const float prio = 1.0f;
    const char *exts[] = {VK_KHR_SWAPCHAIN_EXTENSION_NAME};
    VkDeviceQueueCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                  .queueFamilyIndex = g->qfam,
                                  .queueCount = 1,
                                  .pQueuePriorities = &prio};
    VkDeviceCreateInfo di = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                             .queueCreateInfoCount = 1,
                             .pQueueCreateInfos = &qi,
                             .enabledExtensionCount = g->surface != VK_NULL_HANDLE ? 1 : 0,
                             .ppEnabledExtensionNames = exts};
    VK_TRY(vkCreateDevice(g->phys, &di, NULL, &g->dev));
    vkGetDeviceQueue(g->dev, g->qfam, 0, &g->queue);
    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                  .queueFamilyIndex = g->qfam};
    VK_TRY(vkCreateCommandPool(g->dev, &pi, NULL, &g->pool));
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = g->pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VK_TRY(vkAllocateCommandBuffers(g->dev, &ai, &g->cmd));
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VK_TRY(vkCreateFence(g->dev, &fi, NULL, &g->fence));
    VkSemaphoreCreateInfo si = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
    if (g->surface != VK_NULL_HANDLE) VK_TRY(vkCreateSemaphore(g->dev, &si, NULL, &g->acquired));
done:
    return rc;
}

/* ---- render pass and pipelines -------------------------------------------------------------- */

static int create_pass(vw_gpu *g, eng_err *err) {
    int rc = ENG_OK;
    const VkFormat candidates[] = {VK_FORMAT_D32_SFLOAT, VK_FORMAT_X8_D24_UNORM_PACK32,
                                   VK_FORMAT_D24_UNORM_S8_UINT, VK_FORMAT_D32_SFLOAT_S8_UINT,
                                   VK_FORMAT_D16_UNORM};
    g->depth_format = VK_FORMAT_UNDEFINED;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        VkFormatProperties fp;
        vkGetPhysicalDeviceFormatProperties(g->phys, candidates[i], &fp);
        if (fp.optimalTilingFeatures & VK_FORMAT_FEATURE_DEPTH_STENCIL_ATTACHMENT_BIT) {
            g->depth_format = candidates[i];
            break;
        }
    }
    VkFormatProperties cp;
    vkGetPhysicalDeviceFormatProperties(g->phys, COLOR_FORMAT, &cp);
    if (g->depth_format == VK_FORMAT_UNDEFINED ||
        !(cp.optimalTilingFeatures & VK_FORMAT_FEATURE_COLOR_ATTACHMENT_BLEND_BIT) ||
        !(cp.optimalTilingFeatures & VK_FORMAT_FEATURE_SAMPLED_IMAGE_BIT)) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "vw_gpu: %s cannot render R8G8B8A8_UNORM with a depth buffer", g->name);
        goto done;
    }
    VkAttachmentDescription att[2] = {
        {.format = COLOR_FORMAT,
         .samples = VK_SAMPLE_COUNT_1_BIT,
         .loadOp = VK_ATTACHMENT_LOAD_OP_CLEAR,
         .storeOp = VK_ATTACHMENT_STORE_OP_STORE,
         .stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE,
         .stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE,
         .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED,
         .finalLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL},
        {.format = g->depth_format,
         .samples = VK_SAMPLE_COUNT_1_BIT,
         .loadOp = VK_ATTACHMENT_LOAD_OP_CLEAR,
         .storeOp = VK_ATTACHMENT_STORE_OP_DONT_CARE,
         .stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE,
         .stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE,
         .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED,
         .finalLayout = VK_IMAGE_LAYOUT_DEPTH_STENCIL_ATTACHMENT_OPTIMAL}};
    VkAttachmentReference cref = {0, VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
    VkAttachmentReference dref = {1, VK_IMAGE_LAYOUT_DEPTH_STENCIL_ATTACHMENT_OPTIMAL};
    VkSubpassDescription sub = {.pipelineBindPoint = VK_PIPELINE_BIND_POINT_GRAPHICS,
                                .colorAttachmentCount = 1,
                                .pColorAttachments = &cref,
                                .pDepthStencilAttachment = &dref};
    VkSubpassDependency deps[2] = {
        {.srcSubpass = VK_SUBPASS_EXTERNAL,
         .dstSubpass = 0,
         .srcStageMask = VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_LATE_FRAGMENT_TESTS_BIT,
         .dstStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT |
                         VK_PIPELINE_STAGE_EARLY_FRAGMENT_TESTS_BIT,
         .srcAccessMask = VK_ACCESS_DEPTH_STENCIL_ATTACHMENT_WRITE_BIT,
         .dstAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT |
                          VK_ACCESS_DEPTH_STENCIL_ATTACHMENT_READ_BIT |
                          VK_ACCESS_DEPTH_STENCIL_ATTACHMENT_WRITE_BIT},
        {.srcSubpass = 0,
         .dstSubpass = VK_SUBPASS_EXTERNAL,
         .srcStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT,
         .dstStageMask = VK_PIPELINE_STAGE_TRANSFER_BIT,
         .srcAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT,
         .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT}};
    VkRenderPassCreateInfo ri = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_CREATE_INFO,
                                 .attachmentCount = 2,
                                 .pAttachments = att,
                                 .subpassCount = 1,
                                 .pSubpasses = &sub,
                                 .dependencyCount = 2,
                                 .pDependencies = deps};
    VK_TRY(vkCreateRenderPass(g->dev, &ri, NULL, &g->pass));
done:
    return rc;
}

static int create_pipeline(vw_gpu *g,
                           VkPipeline *out,
                           VkPipelineLayout layout,
                           const uint32_t *vs,
                           size_t vs_bytes,
                           const uint32_t *fs,
                           size_t fs_bytes,
                           int mesh,
                           eng_err *err) {
    int rc = ENG_OK;
    VkShaderModule vm = VK_NULL_HANDLE, fm = VK_NULL_HANDLE;
    if ((rc = shader_module(g, &vm, vs, vs_bytes, err)) != ENG_OK) goto done;
    if ((rc = shader_module(g, &fm, fs, fs_bytes, err)) != ENG_OK) goto done;
    VkPipelineShaderStageCreateInfo stages[2] = {
        {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
         .stage = VK_SHADER_STAGE_VERTEX_BIT,
         .module = vm,
         .pName = "main"},
        {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
         .stage = VK_SHADER_STAGE_FRAGMENT_BIT,
         .module = fm,
         .pName = "main"}};
    VkVertexInputBindingDescription bind = {0, sizeof(mesh_vertex), VK_VERTEX_INPUT_RATE_VERTEX};
    VkVertexInputAttributeDescription attrs[3] = {
        {0, 0, VK_FORMAT_R32G32B32_SFLOAT, offsetof(mesh_vertex, pos)},
        {1, 0, VK_FORMAT_R32G32B32_SFLOAT, offsetof(mesh_vertex, nrm)},
        {2, 0, VK_FORMAT_R8G8B8A8_UNORM, offsetof(mesh_vertex, rgba)}};
    VkPipelineVertexInputStateCreateInfo vin = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_VERTEX_INPUT_STATE_CREATE_INFO,
        .vertexBindingDescriptionCount = mesh ? 1 : 0,
        .pVertexBindingDescriptions = &bind,
        .vertexAttributeDescriptionCount = mesh ? 3 : 0,
        .pVertexAttributeDescriptions = attrs};
    VkPipelineInputAssemblyStateCreateInfo ia = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_INPUT_ASSEMBLY_STATE_CREATE_INFO,
        .topology =
            mesh ? VK_PRIMITIVE_TOPOLOGY_TRIANGLE_LIST : VK_PRIMITIVE_TOPOLOGY_TRIANGLE_STRIP};
    VkPipelineViewportStateCreateInfo vp = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_VIEWPORT_STATE_CREATE_INFO,
        .viewportCount = 1,
        .scissorCount = 1};
    VkPipelineRasterizationStateCreateInfo rs = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_RASTERIZATION_STATE_CREATE_INFO,
        .polygonMode = VK_POLYGON_MODE_FILL,
        .cullMode = VK_CULL_MODE_NONE, /* back faces are drawn and lit too */
        .frontFace = VK_FRONT_FACE_COUNTER_CLOCKWISE,
        .lineWidth = 1.0f};
    VkPipelineMultisampleStateCreateInfo ms = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_MULTISAMPLE_STATE_CREATE_INFO,
        .rasterizationSamples = VK_SAMPLE_COUNT_1_BIT};
    VkPipelineDepthStencilStateCreateInfo ds = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_DEPTH_STENCIL_STATE_CREATE_INFO,
        .depthTestEnable = mesh ? VK_TRUE : VK_FALSE,
        .depthWriteEnable = mesh ? VK_TRUE : VK_FALSE,
        .depthCompareOp = VK_COMPARE_OP_LESS};
    /* Quads blend by alpha (the overlay's box and text); an opaque texel (alpha 1) replaces the
     * pixel exactly: src * 1 + dst * 0. */
    VkPipelineColorBlendAttachmentState blend = {
        .blendEnable = mesh ? VK_FALSE : VK_TRUE,
        .srcColorBlendFactor = VK_BLEND_FACTOR_SRC_ALPHA,
        .dstColorBlendFactor = VK_BLEND_FACTOR_ONE_MINUS_SRC_ALPHA,
        .colorBlendOp = VK_BLEND_OP_ADD,
        .srcAlphaBlendFactor = VK_BLEND_FACTOR_ONE,
        .dstAlphaBlendFactor = VK_BLEND_FACTOR_ONE_MINUS_SRC_ALPHA,
        .alphaBlendOp = VK_BLEND_OP_ADD,
        .colorWriteMask = VK_COLOR_COMPONENT_R_BIT | VK_COLOR_COMPONENT_G_BIT |
                          VK_COLOR_COMPONENT_B_BIT | VK_COLOR_COMPONENT_A_BIT};
    VkPipelineColorBlendStateCreateInfo cb = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_COLOR_BLEND_STATE_CREATE_INFO,
        .attachmentCount = 1,
        .pAttachments = &blend};
    const VkDynamicState dyn[2] = {VK_DYNAMIC_STATE_VIEWPORT, VK_DYNAMIC_STATE_SCISSOR};
    VkPipelineDynamicStateCreateInfo dy = {.sType =
                                               VK_STRUCTURE_TYPE_PIPELINE_DYNAMIC_STATE_CREATE_INFO,
                                           .dynamicStateCount = 2,
                                           .pDynamicStates = dyn};
    VkGraphicsPipelineCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_GRAPHICS_PIPELINE_CREATE_INFO,
                                       .stageCount = 2,
                                       .pStages = stages,
                                       .pVertexInputState = &vin,
                                       .pInputAssemblyState = &ia,
                                       .pViewportState = &vp,
                                       .pRasterizationState = &rs,
                                       .pMultisampleState = &ms,
                                       .pDepthStencilState = &ds,
                                       .pColorBlendState = &cb,
                                       .pDynamicState = &dy,
                                       .layout = layout,
                                       .renderPass = g->pass,
                                       .subpass = 0};
    VK_TRY(vkCreateGraphicsPipelines(g->dev, VK_NULL_HANDLE, 1, &pi, NULL, out));
done:
    if (vm != VK_NULL_HANDLE) vkDestroyShaderModule(g->dev, vm, NULL);
    if (fm != VK_NULL_HANDLE) vkDestroyShaderModule(g->dev, fm, NULL);
    return rc;
}

static int create_pipelines(vw_gpu *g, eng_err *err) {
    int rc = ENG_OK;
    VkDescriptorSetLayoutBinding b = {.binding = 0,
                                      .descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER,
                                      .descriptorCount = 1,
                                      .stageFlags = VK_SHADER_STAGE_FRAGMENT_BIT};
    VkDescriptorSetLayoutCreateInfo li = {.sType =
                                              VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                          .bindingCount = 1,
                                          .pBindings = &b};
    VK_TRY(vkCreateDescriptorSetLayout(g->dev, &li, NULL, &g->set_layout));
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, VW_GPU_TEX_COUNT};
    VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                     .maxSets = VW_GPU_TEX_COUNT,
                                     .poolSizeCount = 1,
                                     .pPoolSizes = &ps};
    VK_TRY(vkCreateDescriptorPool(g->dev, &pi, NULL, &g->desc_pool));
    for (int i = 0; i < VW_GPU_TEX_COUNT; i++) {
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = g->desc_pool,
                                          .descriptorSetCount = 1,
                                          .pSetLayouts = &g->set_layout};
        VK_TRY(vkAllocateDescriptorSets(g->dev, &ai, &g->tex[i].set));
    }
    /* NEAREST: a texture shown at its own size is reproduced texel for pixel. */
    VkSamplerCreateInfo si = {.sType = VK_STRUCTURE_TYPE_SAMPLER_CREATE_INFO,
                              .magFilter = VK_FILTER_NEAREST,
                              .minFilter = VK_FILTER_NEAREST,
                              .mipmapMode = VK_SAMPLER_MIPMAP_MODE_NEAREST,
                              .addressModeU = VK_SAMPLER_ADDRESS_MODE_CLAMP_TO_EDGE,
                              .addressModeV = VK_SAMPLER_ADDRESS_MODE_CLAMP_TO_EDGE,
                              .addressModeW = VK_SAMPLER_ADDRESS_MODE_CLAMP_TO_EDGE,
                              .maxLod = 0.0f};
    VK_TRY(vkCreateSampler(g->dev, &si, NULL, &g->sampler));
    VkPushConstantRange qr = {VK_SHADER_STAGE_VERTEX_BIT, 0, 4 * sizeof(float)};
    VkPipelineLayoutCreateInfo ql = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                     .setLayoutCount = 1,
                                     .pSetLayouts = &g->set_layout,
                                     .pushConstantRangeCount = 1,
                                     .pPushConstantRanges = &qr};
    VK_TRY(vkCreatePipelineLayout(g->dev, &ql, NULL, &g->quad_layout));
    VkPushConstantRange mr = {VK_SHADER_STAGE_VERTEX_BIT | VK_SHADER_STAGE_FRAGMENT_BIT, 0,
                              sizeof(mesh_push)};
    VkPipelineLayoutCreateInfo ml = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                     .pushConstantRangeCount = 1,
                                     .pPushConstantRanges = &mr};
    VK_TRY(vkCreatePipelineLayout(g->dev, &ml, NULL, &g->mesh_layout));
    rc = create_pipeline(g, &g->quad_pipe, g->quad_layout, quad_vert_spv, sizeof quad_vert_spv,
                         quad_frag_spv, sizeof quad_frag_spv, 0, err);
    if (rc != ENG_OK) goto done;
    rc = create_pipeline(g, &g->mesh_pipe, g->mesh_layout, mesh_vert_spv, sizeof mesh_vert_spv,
                         mesh_frag_spv, sizeof mesh_frag_spv, 1, err);
done:
    return rc;
}

/* ---- swapchain ------------------------------------------------------------------------------ */

static void swap_destroy(vw_gpu *g) {
    for (uint32_t i = 0; i < MAX_SWAP; i++)
        if (g->rendered[i] != VK_NULL_HANDLE) {
            vkDestroySemaphore(g->dev, g->rendered[i], NULL);
            g->rendered[i] = VK_NULL_HANDLE;
        }
    if (g->swap != VK_NULL_HANDLE) vkDestroySwapchainKHR(g->dev, g->swap, NULL);
    g->swap = VK_NULL_HANDLE;
    g->n_swap = 0;
}

static int swap_create(vw_gpu *g, eng_err *err) {
    int rc = ENG_OK;
    VkSurfaceFormatKHR *formats = NULL;
    VkSwapchainKHR old = g->swap;
    VK_TRY(vkDeviceWaitIdle(g->dev));
    VkSurfaceCapabilitiesKHR caps;
    VK_TRY(vkGetPhysicalDeviceSurfaceCapabilitiesKHR(g->phys, g->surface, &caps));
    if (!(caps.supportedUsageFlags & VK_IMAGE_USAGE_TRANSFER_DST_BIT)) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "vw_gpu: the window's swapchain images cannot be transfer targets on %s",
                         g->name);
        goto done;
    }
    uint32_t nf = 0;
    VK_TRY(vkGetPhysicalDeviceSurfaceFormatsKHR(g->phys, g->surface, &nf, NULL));
    formats = calloc(nf ? nf : 1, sizeof *formats);
    if (formats == NULL || nf == 0) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED, "vw_gpu: the window surface has no formats");
        goto done;
    }
    VK_TRY(vkGetPhysicalDeviceSurfaceFormatsKHR(g->phys, g->surface, &nf, formats));
    /* UNORM first: the offscreen bytes are shown as they are (an sRGB swapchain would re-encode
     * them and brighten everything). */
    int pick = 0, score = -1;
    for (uint32_t i = 0; i < nf; i++) {
        const VkFormat f = formats[i].format;
        const int s = f == VK_FORMAT_B8G8R8A8_UNORM || f == VK_FORMAT_R8G8B8A8_UNORM ? 2
                      : f == VK_FORMAT_B8G8R8A8_SRGB || f == VK_FORMAT_R8G8B8A8_SRGB ? 1
                                                                                     : 0;
        if (s > score) {
            score = s;
            pick = (int)i;
        }
    }
    g->swap_format = formats[pick].format;
    VkFormatProperties src, dst;
    vkGetPhysicalDeviceFormatProperties(g->phys, COLOR_FORMAT, &src);
    vkGetPhysicalDeviceFormatProperties(g->phys, g->swap_format, &dst);
    g->swap_blit = (src.optimalTilingFeatures & VK_FORMAT_FEATURE_BLIT_SRC_BIT) &&
                   (dst.optimalTilingFeatures & VK_FORMAT_FEATURE_BLIT_DST_BIT);
    if (!g->swap_blit && g->swap_format != COLOR_FORMAT) {
        rc = eng_err_set(err, ENG_E_UNSUPPORTED,
                         "vw_gpu: cannot blit to the window's format %d on %s", (int)g->swap_format,
                         g->name);
        goto done;
    }
    VkExtent2D ext = caps.currentExtent;
    if (ext.width == UINT32_MAX) {
        int fw = 0, fh = 0;
        glfwGetFramebufferSize(g->window, &fw, &fh);
        ext.width = (uint32_t)(fw > 0 ? fw : 1);
        ext.height = (uint32_t)(fh > 0 ? fh : 1);
    }
    if (ext.width < caps.minImageExtent.width) ext.width = caps.minImageExtent.width;
    if (ext.height < caps.minImageExtent.height) ext.height = caps.minImageExtent.height;
    if (ext.width > caps.maxImageExtent.width) ext.width = caps.maxImageExtent.width;
    if (ext.height > caps.maxImageExtent.height) ext.height = caps.maxImageExtent.height;
    if (ext.width == 0 || ext.height == 0) goto done; /* minimised: no swapchain for now */
    uint32_t n_images = caps.minImageCount + 1;
    if (caps.maxImageCount > 0 && n_images > caps.maxImageCount) n_images = caps.maxImageCount;
    const VkCompositeAlphaFlagBitsKHR alpha =
        (caps.supportedCompositeAlpha & VK_COMPOSITE_ALPHA_OPAQUE_BIT_KHR)
            ? VK_COMPOSITE_ALPHA_OPAQUE_BIT_KHR
            : (VkCompositeAlphaFlagBitsKHR)(caps.supportedCompositeAlpha &
                                            -caps.supportedCompositeAlpha);
    VkSwapchainCreateInfoKHR si = {.sType = VK_STRUCTURE_TYPE_SWAPCHAIN_CREATE_INFO_KHR,
                                   .surface = g->surface,
                                   .minImageCount = n_images,
                                   .imageFormat = g->swap_format,
                                   .imageColorSpace = formats[pick].colorSpace,
                                   .imageExtent = ext,
                                   .imageArrayLayers = 1,
                                   .imageUsage = VK_IMAGE_USAGE_TRANSFER_DST_BIT,
                                   .imageSharingMode = VK_SHARING_MODE_EXCLUSIVE,
                                   .preTransform = caps.currentTransform,
                                   .compositeAlpha = alpha,
                                   .presentMode = VK_PRESENT_MODE_FIFO_KHR,
                                   .clipped = VK_TRUE,
                                   .oldSwapchain = old};
    VkSwapchainKHR sw = VK_NULL_HANDLE;
    VK_TRY(vkCreateSwapchainKHR(g->dev, &si, NULL, &sw));
    swap_destroy(g); /* the old one and its semaphores */
    g->swap = sw;
    g->swap_extent = ext;
    g->n_swap = MAX_SWAP;
    VK_TRY(vkGetSwapchainImagesKHR(g->dev, g->swap, &g->n_swap, g->swap_images));
    VkSemaphoreCreateInfo smi = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
    for (uint32_t i = 0; i < g->n_swap; i++)
        VK_TRY(vkCreateSemaphore(g->dev, &smi, NULL, &g->rendered[i]));
done:
    free(formats);
    return rc;
}

#ifdef VW_PIN_LIBRARIES
/* Sanitizer builds only (viewer/CMakeLists.txt): LeakSanitizer reports at exit, after the
 * loader has unloaded the driver and the layers, so their leaked allocations would show as
 * "<unknown module>" and tests/viewer_lsan.supp could not name them. Every library loaded so far
 * is marked RTLD_NODELETE (RTLD_NOLOAD: nothing new is loaded) and stays mapped to the end. */
static int pin_library(struct dl_phdr_info *info, size_t size, void *user) {
    (void)size;
    (void)user;
    if (info->dlpi_name != NULL && info->dlpi_name[0] != '\0')
        (void)dlopen(info->dlpi_name, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    return 0;
}
#endif

/* ---- public --------------------------------------------------------------------------------- */

int vw_gpu_create(vw_gpu **out, const vw_gpu_params *p, eng_err *err) {
    int rc = ENG_OK;
    vw_gpu *g = calloc(1, sizeof *g);
    ENG_ASSERT(out != NULL && p != NULL && (!p->validate || p->validation_count != NULL));
    *out = NULL;
    if (g == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "vw_gpu_create: no memory");
        goto done;
    }
    g->validation_count = p->validation_count;
    g->window = p->window;
    snprintf(g->name, sizeof g->name, "(no device)");
    if ((rc = create_instance(g, p, err)) != ENG_OK) goto done;
    if (g->window != NULL)
        VK_TRY(glfwCreateWindowSurface(g->instance, g->window, NULL, &g->surface));
    if ((rc = pick_device(g, p->gpu, err)) != ENG_OK) goto done;
    if ((rc = create_device(g, err)) != ENG_OK) goto done;
#ifdef VW_PIN_LIBRARIES
    dl_iterate_phdr(pin_library, NULL);
#endif
    if ((rc = create_pass(g, err)) != ENG_OK) goto done;
    if ((rc = create_pipelines(g, err)) != ENG_OK) goto done;
    if (g->surface != VK_NULL_HANDLE && (rc = swap_create(g, err)) != ENG_OK) goto done;
    *out = g;
    g = NULL;
done:
    vw_gpu_destroy(g);
    return rc;
}

static void target_destroy(vw_gpu *g) {
    if (g->fb != VK_NULL_HANDLE) vkDestroyFramebuffer(g->dev, g->fb, NULL);
    if (g->color_view != VK_NULL_HANDLE) vkDestroyImageView(g->dev, g->color_view, NULL);
    if (g->depth_view != VK_NULL_HANDLE) vkDestroyImageView(g->dev, g->depth_view, NULL);
    if (g->color != VK_NULL_HANDLE) vkDestroyImage(g->dev, g->color, NULL);
    if (g->depth != VK_NULL_HANDLE) vkDestroyImage(g->dev, g->depth, NULL);
    if (g->color_mem != VK_NULL_HANDLE) vkFreeMemory(g->dev, g->color_mem, NULL);
    if (g->depth_mem != VK_NULL_HANDLE) vkFreeMemory(g->dev, g->depth_mem, NULL);
    g->fb = VK_NULL_HANDLE;
    g->color_view = g->depth_view = VK_NULL_HANDLE;
    g->color = g->depth = VK_NULL_HANDLE;
    g->color_mem = g->depth_mem = VK_NULL_HANDLE;
    g->w = g->h = 0;
}

static void tex_destroy(vw_gpu *g, gpu_tex *t) {
    if (t->view != VK_NULL_HANDLE) vkDestroyImageView(g->dev, t->view, NULL);
    if (t->image != VK_NULL_HANDLE) vkDestroyImage(g->dev, t->image, NULL);
    if (t->mem != VK_NULL_HANDLE) vkFreeMemory(g->dev, t->mem, NULL);
    t->view = VK_NULL_HANDLE;
    t->image = VK_NULL_HANDLE;
    t->mem = VK_NULL_HANDLE;
    t->w = t->h = 0;
}

void vw_gpu_destroy(vw_gpu *g) {
    if (g == NULL) return;
    if (g->dev != VK_NULL_HANDLE) {
        vkDeviceWaitIdle(g->dev);
        swap_destroy(g);
        target_destroy(g);
        for (int i = 0; i < VW_GPU_TEX_COUNT; i++)
            tex_destroy(g, &g->tex[i]);
        buf_destroy(g, &g->staging);
        buf_destroy(g, &g->readback);
        buf_destroy(g, &g->vbuf);
        buf_destroy(g, &g->ibuf);
        if (g->quad_pipe != VK_NULL_HANDLE) vkDestroyPipeline(g->dev, g->quad_pipe, NULL);
        if (g->mesh_pipe != VK_NULL_HANDLE) vkDestroyPipeline(g->dev, g->mesh_pipe, NULL);
        if (g->quad_layout != VK_NULL_HANDLE) vkDestroyPipelineLayout(g->dev, g->quad_layout, NULL);
        if (g->mesh_layout != VK_NULL_HANDLE) vkDestroyPipelineLayout(g->dev, g->mesh_layout, NULL);
        if (g->sampler != VK_NULL_HANDLE) vkDestroySampler(g->dev, g->sampler, NULL);
        if (g->desc_pool != VK_NULL_HANDLE) vkDestroyDescriptorPool(g->dev, g->desc_pool, NULL);
        if (g->set_layout != VK_NULL_HANDLE)
            vkDestroyDescriptorSetLayout(g->dev, g->set_layout, NULL);
        if (g->pass != VK_NULL_HANDLE) vkDestroyRenderPass(g->dev, g->pass, NULL);
        if (g->acquired != VK_NULL_HANDLE) vkDestroySemaphore(g->dev, g->acquired, NULL);
        if (g->fence != VK_NULL_HANDLE) vkDestroyFence(g->dev, g->fence, NULL);
        if (g->pool != VK_NULL_HANDLE) vkDestroyCommandPool(g->dev, g->pool, NULL);
        vkDestroyDevice(g->dev, NULL);
    }
    if (g->surface != VK_NULL_HANDLE) vkDestroySurfaceKHR(g->instance, g->surface, NULL);
    if (g->messenger != VK_NULL_HANDLE) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
                g->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy != NULL) destroy(g->instance, g->messenger, NULL);
    }
    if (g->instance != VK_NULL_HANDLE) vkDestroyInstance(g->instance, NULL);
    free(g);
}

const char *vw_gpu_device_name(const vw_gpu *g) {
    return g->name;
}

int vw_gpu_resize(vw_gpu *g, int64_t w, int64_t h, eng_err *err) {
    int rc = ENG_OK;
    if (w < 1 || h < 1 || w > 16384 || h > 16384) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG, "vw_gpu_resize: size %lldx%lld, expected 1..16384",
                         (long long)w, (long long)h);
        goto done;
    }
    if (w == g->w && h == g->h) goto done;
    VK_TRY(vkDeviceWaitIdle(g->dev));
    target_destroy(g);
    rc = image_create(g, &g->color, &g->color_mem, &g->color_view, COLOR_FORMAT,
                      VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT | VK_IMAGE_USAGE_TRANSFER_SRC_BIT,
                      VK_IMAGE_ASPECT_COLOR_BIT, w, h, "the colour target", err);
    if (rc != ENG_OK) goto done;
    rc = image_create(g, &g->depth, &g->depth_mem, &g->depth_view, g->depth_format,
                      VK_IMAGE_USAGE_DEPTH_STENCIL_ATTACHMENT_BIT, VK_IMAGE_ASPECT_DEPTH_BIT, w, h,
                      "the depth target", err);
    if (rc != ENG_OK) goto done;
    VkImageView views[2] = {g->color_view, g->depth_view};
    VkFramebufferCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO,
                                  .renderPass = g->pass,
                                  .attachmentCount = 2,
                                  .pAttachments = views,
                                  .width = (uint32_t)w,
                                  .height = (uint32_t)h,
                                  .layers = 1};
    VK_TRY(vkCreateFramebuffer(g->dev, &fi, NULL, &g->fb));
    rc = buf_ensure(g, &g->readback, (VkDeviceSize)(w * h * 4), VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                    "the read-back buffer", err);
    if (rc != ENG_OK) goto done;
    g->w = w;
    g->h = h;
done:
    if (rc != ENG_OK) target_destroy(g);
    return rc;
}

int vw_gpu_set_texture(
    vw_gpu *g, int slot, const uint8_t *rgba, int64_t w, int64_t h, eng_err *err) {
    int rc = ENG_OK;
    ENG_ASSERT(slot >= 0 && slot < VW_GPU_TEX_COUNT && rgba != NULL);
    gpu_tex *t = &g->tex[slot];
    if (w < 1 || h < 1 || w > 16384 || h > 16384) {
        rc = eng_err_set(err, ENG_E_INVALID_ARG,
                         "vw_gpu_set_texture: size %lldx%lld, expected 1..16384", (long long)w,
                         (long long)h);
        goto done;
    }
    const VkDeviceSize bytes = (VkDeviceSize)(w * h * 4);
    rc =
        buf_ensure(g, &g->staging, bytes, VK_BUFFER_USAGE_TRANSFER_SRC_BIT, "texture staging", err);
    if (rc != ENG_OK) goto done;
    memcpy(g->staging.map, rgba, (size_t)bytes);
    if (t->w != w || t->h != h) { /* a new size: a new image (the GPU is idle between frames) */
        tex_destroy(g, t);
        rc = image_create(g, &t->image, &t->mem, &t->view, COLOR_FORMAT,
                          VK_IMAGE_USAGE_SAMPLED_BIT | VK_IMAGE_USAGE_TRANSFER_DST_BIT,
                          VK_IMAGE_ASPECT_COLOR_BIT, w, h, "a texture", err);
        if (rc != ENG_OK) goto done;
        t->w = w;
        t->h = h;
        VkDescriptorImageInfo ii = {g->sampler, t->view, VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL};
        VkWriteDescriptorSet wr = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                   .dstSet = t->set,
                                   .dstBinding = 0,
                                   .descriptorCount = 1,
                                   .descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER,
                                   .pImageInfo = &ii};
        vkUpdateDescriptorSets(g->dev, 1, &wr, 0, NULL);
    }
    if ((rc = cmd_begin(g, err)) != ENG_OK) goto done;
    barrier(g->cmd, t->image, VK_IMAGE_ASPECT_COLOR_BIT, VK_IMAGE_LAYOUT_UNDEFINED,
            VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, 0, VK_ACCESS_TRANSFER_WRITE_BIT,
            VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT);
    VkBufferImageCopy region = {.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
                                .imageExtent = {(uint32_t)w, (uint32_t)h, 1}};
    vkCmdCopyBufferToImage(g->cmd, g->staging.buf, t->image, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
                           1, &region);
    barrier(g->cmd, t->image, VK_IMAGE_ASPECT_COLOR_BIT, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
            VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL, VK_ACCESS_TRANSFER_WRITE_BIT,
            VK_ACCESS_SHADER_READ_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
            VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT);
    rc = cmd_submit_wait(g, VK_NULL_HANDLE, 0, VK_NULL_HANDLE, err);
done:
    return rc;
}

int vw_gpu_set_mesh(vw_gpu *g, const vw_mesh_data *m, eng_err *err) {
    int rc = ENG_OK;
    g->n_indices = 0;
    if (m->n_tris <= 0 || m->n_verts <= 0) goto done;
    rc = buf_ensure(g, &g->vbuf, (VkDeviceSize)m->n_verts * sizeof(mesh_vertex),
                    VK_BUFFER_USAGE_VERTEX_BUFFER_BIT, "mesh vertices", err);
    if (rc != ENG_OK) goto done;
    rc = buf_ensure(g, &g->ibuf, (VkDeviceSize)m->n_tris * 3 * sizeof(uint32_t),
                    VK_BUFFER_USAGE_INDEX_BUFFER_BIT, "mesh indices", err);
    if (rc != ENG_OK) goto done;
    mesh_vertex *v = g->vbuf.map;
    for (int64_t i = 0; i < m->n_verts; i++) {
        memcpy(v[i].pos, m->pos + 3 * i, sizeof v[i].pos);
        memcpy(v[i].nrm, m->normals + 3 * i, sizeof v[i].nrm);
        memcpy(v[i].rgba, m->colors + 3 * i, 3);
        v[i].rgba[3] = 255;
    }
    for (int64_t i = 0; i < 3 * m->n_tris; i++) {
        if (m->tris[i] >= (uint64_t)m->n_verts) {
            rc = eng_err_set(err, ENG_E_INVALID_ARG,
                             "vw_gpu_set_mesh: index %u at %lld is not below %lld vertices",
                             m->tris[i], (long long)i, (long long)m->n_verts);
            goto done;
        }
    }
    memcpy(g->ibuf.map, m->tris, (size_t)m->n_tris * 3 * sizeof(uint32_t));
    g->n_indices = 3 * m->n_tris;
done:
    return rc;
}

static void draw_quad(vw_gpu *g, int slot, const float rect_px[4]) {
    /* pixels -> normalized device coordinates (Vulkan: -1 at the top, +1 at the bottom) */
    const float r[4] = {
        2.0f * rect_px[0] / (float)g->w - 1.0f, 2.0f * rect_px[1] / (float)g->h - 1.0f,
        2.0f * rect_px[2] / (float)g->w - 1.0f, 2.0f * rect_px[3] / (float)g->h - 1.0f};
    vkCmdBindPipeline(g->cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, g->quad_pipe);
    vkCmdBindDescriptorSets(g->cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, g->quad_layout, 0, 1,
                            &g->tex[slot].set, 0, NULL);
    vkCmdPushConstants(g->cmd, g->quad_layout, VK_SHADER_STAGE_VERTEX_BIT, 0, sizeof r, r);
    vkCmdDraw(g->cmd, 4, 1, 0, 0);
}

int vw_gpu_frame(vw_gpu *g, const vw_gpu_draw *d, int *stale, eng_err *err) {
    int rc = ENG_OK;
    uint32_t index = 0;
    int present = d->present && g->surface != VK_NULL_HANDLE;
    *stale = 0;
    ENG_ASSERT(g->fb != VK_NULL_HANDLE);
    if (present && g->swap == VK_NULL_HANDLE) {
        if ((rc = swap_create(g, err)) != ENG_OK) goto done;
        if (g->swap == VK_NULL_HANDLE) present = 0; /* still minimised */
    }
    if (present) {
        const VkResult r =
            vkAcquireNextImageKHR(g->dev, g->swap, UINT64_MAX, g->acquired, VK_NULL_HANDLE, &index);
        if (r == VK_ERROR_OUT_OF_DATE_KHR) {
            rc = swap_create(g, err);
            *stale = 1;
            goto done;
        }
        if (r != VK_SUBOPTIMAL_KHR) VK_TRY(r);
    }
    if ((rc = cmd_begin(g, err)) != ENG_OK) goto done;
    VkClearValue clear[2];
    memcpy(clear[0].color.float32, d->clear, sizeof d->clear);
    clear[1].depthStencil.depth = 1.0f;
    clear[1].depthStencil.stencil = 0;
    VkRenderPassBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO,
                                .renderPass = g->pass,
                                .framebuffer = g->fb,
                                .renderArea = {{0, 0}, {(uint32_t)g->w, (uint32_t)g->h}},
                                .clearValueCount = 2,
                                .pClearValues = clear};
    vkCmdBeginRenderPass(g->cmd, &bi, VK_SUBPASS_CONTENTS_INLINE);
    VkViewport vp = {0, 0, (float)g->w, (float)g->h, 0.0f, 1.0f};
    VkRect2D sc = {{0, 0}, {(uint32_t)g->w, (uint32_t)g->h}};
    vkCmdSetViewport(g->cmd, 0, 1, &vp);
    vkCmdSetScissor(g->cmd, 0, 1, &sc);
    if (d->draw_mesh && g->n_indices > 0) {
        mesh_push pc;
        memcpy(pc.mvp, d->mvp, sizeof pc.mvp);
        pc.eye[0] = d->eye[0];
        pc.eye[1] = d->eye[1];
        pc.eye[2] = d->eye[2];
        pc.eye[3] = 1.0f;
        pc.params[0] = d->depth_view ? 1.0f : 0.0f;
        pc.params[1] = d->near_d;
        pc.params[2] = d->far_d;
        pc.params[3] = 0.0f;
        VkDeviceSize zero = 0;
        vkCmdBindPipeline(g->cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, g->mesh_pipe);
        vkCmdPushConstants(g->cmd, g->mesh_layout,
                           VK_SHADER_STAGE_VERTEX_BIT | VK_SHADER_STAGE_FRAGMENT_BIT, 0, sizeof pc,
                           &pc);
        vkCmdBindVertexBuffers(g->cmd, 0, 1, &g->vbuf.buf, &zero);
        vkCmdBindIndexBuffer(g->cmd, g->ibuf.buf, 0, VK_INDEX_TYPE_UINT32);
        vkCmdDrawIndexed(g->cmd, (uint32_t)g->n_indices, 1, 0, 0, 0);
    }
    for (int i = 0; i < VW_GPU_TEX_COUNT; i++)
        if (d->draw_tex[i] && g->tex[i].image != VK_NULL_HANDLE) draw_quad(g, i, d->rect[i]);
    vkCmdEndRenderPass(g->cmd); /* colour target now in TRANSFER_SRC_OPTIMAL */
    if (d->readback != NULL) {
        VkBufferImageCopy region = {.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
                                    .imageExtent = {(uint32_t)g->w, (uint32_t)g->h, 1}};
        vkCmdCopyImageToBuffer(g->cmd, g->color, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
                               g->readback.buf, 1, &region);
        VkBufferMemoryBarrier hb = {.sType = VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER,
                                    .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                                    .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
                                    .srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
                                    .dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
                                    .buffer = g->readback.buf,
                                    .size = VK_WHOLE_SIZE};
        vkCmdPipelineBarrier(g->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0,
                             0, NULL, 1, &hb, 0, NULL);
    }
    if (present) {
        VkImage dst = g->swap_images[index];
        barrier(g->cmd, dst, VK_IMAGE_ASPECT_COLOR_BIT, VK_IMAGE_LAYOUT_UNDEFINED,
                VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, 0, VK_ACCESS_TRANSFER_WRITE_BIT,
                VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT);
        const uint32_t cw =
            g->swap_extent.width < (uint32_t)g->w ? g->swap_extent.width : (uint32_t)g->w;
        const uint32_t ch =
            g->swap_extent.height < (uint32_t)g->h ? g->swap_extent.height : (uint32_t)g->h;
        if (g->swap_blit) {
            VkImageBlit blit = {
                .srcSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
                .srcOffsets = {{0, 0, 0}, {(int32_t)g->w, (int32_t)g->h, 1}},
                .dstSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
                .dstOffsets = {{0, 0, 0},
                               {(int32_t)g->swap_extent.width, (int32_t)g->swap_extent.height, 1}}};
            vkCmdBlitImage(g->cmd, g->color, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL, dst,
                           VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, 1, &blit, VK_FILTER_NEAREST);
        } else {
            VkImageCopy copy = {.srcSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
                                .dstSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
                                .extent = {cw, ch, 1}};
            vkCmdCopyImage(g->cmd, g->color, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL, dst,
                           VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, 1, &copy);
        }
        barrier(g->cmd, dst, VK_IMAGE_ASPECT_COLOR_BIT, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL,
                VK_IMAGE_LAYOUT_PRESENT_SRC_KHR, VK_ACCESS_TRANSFER_WRITE_BIT, 0,
                VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT);
    }
    rc = cmd_submit_wait(g, present ? g->acquired : VK_NULL_HANDLE, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         present ? g->rendered[index] : VK_NULL_HANDLE, err);
    if (rc != ENG_OK) goto done;
    if (d->readback != NULL) memcpy(d->readback, g->readback.map, (size_t)(g->w * g->h * 4));
    if (present) {
        VkPresentInfoKHR pi = {.sType = VK_STRUCTURE_TYPE_PRESENT_INFO_KHR,
                               .waitSemaphoreCount = 1,
                               .pWaitSemaphores = &g->rendered[index],
                               .swapchainCount = 1,
                               .pSwapchains = &g->swap,
                               .pImageIndices = &index};
        const VkResult r = vkQueuePresentKHR(g->queue, &pi);
        if (r == VK_ERROR_OUT_OF_DATE_KHR || r == VK_SUBOPTIMAL_KHR) {
            rc = swap_create(g, err);
            *stale = 1;
            goto done;
        }
        VK_TRY(r);
    }
done:
    return rc;
}
